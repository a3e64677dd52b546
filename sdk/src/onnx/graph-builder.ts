import { toAttribute, type AttributeInput } from './attribute.js';
import type { DType } from './dtype.js';
import {
  emptyGraph,
  tensorType,
  type AttributeValue,
  type Dim,
  type OnnxFunction,
  type OnnxGraph,
  type OnnxNode,
  type OpsetImports,
  type ValueInfo,
} from './graph-types.js';
import { DEFAULT_OPSET, OnnxModel } from './onnx-model.js';
import { OpHelpers } from './op-helpers.js';
import type { InputRef, NodeEmitter, NodeOptions, Value, ValueRef } from './node-emitter.js';
import { createTensor, type OnnxTensor, type TensorInput } from './tensor.js';

/** Settings for a new `GraphBuilder`. */
export interface GraphBuilderOptions {
  /** The ai.onnx opset the op helpers emit for; `toModel` imports it unless told otherwise. Default 17. */
  opset?: number;
  docString?: string;
  /** For a subgraph (If/Loop/Scan body): the enclosing graph's builder, whose values the body may read and whose names it must not reuse. */
  outerScope?: GraphBuilder;
}

/** Settings for `GraphBuilder.toModel`. */
export interface ToModelOptions {
  /** Opset per domain. The builder's opset is imported for `''` when absent here; every other domain a node uses must be listed. */
  opsets?: OpsetImports;
  /** `producer_name`. */
  producer?: string;
  producerVersion?: string;
  irVersion?: number;
  docString?: string;
  /** `metadata_props`. */
  metadata?: Record<string, string>;
  domain?: string;
  modelVersion?: number;
  functions?: OnnxFunction[];
}

interface OpsetRequirement {
  domain: string;
  min: number;
  /** Exclusive. */
  max?: number;
  why: string;
}

/**
 * Builds an ONNX graph step by step: declare inputs and weights, add nodes (each returns its output),
 * mark outputs, then `toModel()`. Names are checked for clashes and generated where not given.
 */
export class GraphBuilder implements NodeEmitter {
  /** The graph's name. */
  readonly name: string;
  /** The ai.onnx opset the op helpers target. */
  readonly opset: number;
  /** Helpers for common operators (`g.ops.matMul(x, w)`), written for `opset`. */
  readonly ops: OpHelpers;

  private readonly graph: OnnxGraph;
  private readonly names: Set<string>;
  private readonly counters = new Map<string, number>();
  private readonly aliases = new Map<string, string>();
  private readonly producers = new Map<string, OnnxNode>();
  private readonly scalars = new Map<string, Value>();
  private readonly requirements: OpsetRequirement[] = [];
  private readonly outer: GraphBuilder | undefined;

  constructor(name: string, options: GraphBuilderOptions = {}) {
    this.name = name;
    this.outer = options.outerScope;
    this.opset = options.opset ?? this.outer?.opset ?? DEFAULT_OPSET;
    this.graph = emptyGraph(name);
    if (options.docString) this.graph.docString = options.docString;
    // A subgraph shares its parent's namespace: ONNX forbids a body value shadowing an outer one.
    this.names = this.outer ? this.outer.names : new Set();
    this.ops = new OpHelpers(this);
  }

  /** A name starting with `base` that nothing in this graph (or its enclosing graphs) uses yet; reserves it. */
  uniqueName(base: string): string {
    const clean = base.length > 0 ? base : 'v';
    let name = clean;
    let n = this.counters.get(clean) ?? 0;
    while (this.names.has(name)) name = `${clean}_${++n}`;
    this.counters.set(clean, n);
    this.names.add(name);
    return name;
  }

  /** Declares a graph input; symbolic dims are strings (`['batch', 4]`). */
  input(name: string, dtype: DType, shape: readonly Dim[], options: { docString?: string } = {}): Value {
    this.claim(name);
    const info: ValueInfo = { name, type: tensorType(dtype, shape) };
    if (options.docString) info.docString = options.docString;
    this.graph.inputs.push(info);
    return { name, dtype, shape: [...shape] };
  }

  /** Adds a named constant weight (initializer). The dtype follows the typed array unless `dtype` says otherwise. */
  initializer(
    name: string,
    values: TensorInput,
    dims: readonly number[],
    options: { dtype?: DType; docString?: string } = {},
  ): Value {
    const tensor = createTensor(name, values, dims, options.dtype);
    if (options.docString) tensor.docString = options.docString;
    return this.addInitializer(tensor);
  }

  /** Adds an already-made tensor as an initializer, under its own name. */
  addInitializer(tensor: OnnxTensor): Value {
    this.claim(tensor.name);
    this.graph.initializers.push(tensor);
    return { name: tensor.name, dtype: tensor.dtype, shape: [...tensor.dims] };
  }

  /** Adds a constant weight under a generated name (`prefix`, default `const`). */
  constant(values: TensorInput, dims: readonly number[], options: { dtype?: DType; prefix?: string } = {}): Value {
    const name = this.uniqueName(options.prefix ?? 'const');
    const tensor = createTensor(name, values, dims, options.dtype);
    this.graph.initializers.push(tensor);
    return { name, dtype: tensor.dtype, shape: [...tensor.dims] };
  }

  /** A 0-d constant (float32 by default); the same value and dtype share one initializer. */
  scalar(value: number | bigint, dtype: DType = 'float32'): Value {
    const key = `${dtype}:${String(value)}`;
    const found = this.scalars.get(key);
    if (found) return found;
    const v = this.constant([value] as number[] | bigint[], [], { dtype, prefix: `${dtype}_scalar` });
    this.scalars.set(key, v);
    return v;
  }

  /** A 1-D int64 constant, as Reshape/Unsqueeze/Slice inputs want. */
  int64s(values: readonly number[], prefix = 'ints'): Value {
    return this.constant(
      BigInt64Array.from(values, (v) => BigInt(v)),
      [values.length],
      { prefix },
    );
  }

  /** Adds a node with one output and returns that output. */
  node(
    opType: string,
    inputs: readonly InputRef[],
    attrs: Record<string, AttributeInput | undefined> = {},
    options: NodeOptions = {},
  ): Value {
    return this.addNode(opType, inputs, 1, attrs, options)[0]!;
  }

  /** Adds a node with `outputCount` outputs and returns them in order. */
  nodeMulti(
    opType: string,
    inputs: readonly InputRef[],
    outputCount: number,
    attrs: Record<string, AttributeInput | undefined> = {},
    options: NodeOptions = {},
  ): Value[] {
    return this.addNode(opType, inputs, outputCount, attrs, options);
  }

  /**
   * Marks `value` as a graph output with its type. With `name`, the output is called that: the value is
   * renamed when a node of this graph makes it (earlier references to the old name still work), else an Identity is added.
   */
  output(
    value: ValueRef,
    dtype: DType,
    shape: readonly Dim[],
    options: { name?: string; docString?: string } = {},
  ): Value {
    let name = this.resolve(value);
    if (options.name !== undefined && options.name !== name) {
      const producer = this.producers.get(name);
      const alreadyOutput = this.graph.outputs.some((o) => o.name === name);
      if (producer && !alreadyOutput) {
        this.rename(name, options.name);
      } else {
        this.node('Identity', [name], {}, { outputs: [options.name] });
      }
      name = options.name;
    }
    if (this.graph.outputs.some((o) => o.name === name))
      throw new Error(`graph ${this.name}: ${name} is already an output`);
    const info: ValueInfo = { name, type: tensorType(dtype, shape) };
    if (options.docString) info.docString = options.docString;
    this.graph.outputs.push(info);
    return { name, dtype, shape: [...shape] };
  }

  /** Records the type of an intermediate value (`value_info`), which helps readers and shape inference. */
  valueInfo(value: ValueRef, dtype: DType, shape?: readonly Dim[]): void {
    this.graph.valueInfo.push({ name: this.resolve(value), type: tensorType(dtype, shape) });
  }

  /** Records that something added to this graph needs `domain`'s opset in `[min, max)`; `toModel` checks it. */
  requireOpset(domain: string, min: number, max: number | undefined, why: string): void {
    // A subgraph's needs are the enclosing model's needs.
    if (this.outer) this.outer.requireOpset(domain, min, max, why);
    this.requirements.push(max === undefined ? { domain, min, why } : { domain, min, max, why });
  }

  /** The graph built so far, checked: every node input is defined before use and every output is produced. */
  toGraph(): OnnxGraph {
    const defined = new Set<string>([
      ...this.graph.inputs.map((i) => i.name),
      ...this.graph.initializers.map((t) => t.name),
    ]);
    const visible = (n: string): boolean => defined.has(n) || (this.outer?.defines(n) ?? false);
    for (const node of this.graph.nodes) {
      for (const input of node.inputs) {
        if (input !== '' && !visible(input)) {
          throw new Error(
            `graph ${this.name}: node ${node.name} (${node.opType}) reads ${input}, which is not defined before it`,
          );
        }
      }
      for (const output of node.outputs) if (output !== '') defined.add(output);
    }
    for (const output of this.graph.outputs) {
      if (!visible(output.name)) throw new Error(`graph ${this.name}: output ${output.name} is never produced`);
    }
    if (this.graph.outputs.length === 0) throw new Error(`graph ${this.name} has no outputs`);
    return structuredCloneGraph(this.graph);
  }

  /** The finished model. Checks that every domain a node uses is imported, at a version the helpers' forms allow. */
  toModel(options: ToModelOptions = {}): OnnxModel {
    const graph = this.toGraph();
    const opsets: OpsetImports = { '': this.opset, ...(options.opsets ?? {}) };
    const missing = new Set<string>();
    collectDomains(graph, missing);
    for (const f of options.functions ?? []) missing.delete(f.domain);
    for (const d of Object.keys(opsets)) missing.delete(d);
    if (missing.size > 0) {
      throw new Error(
        `graph ${this.name} uses domain(s) ${[...missing].map((d) => `'${d}'`).join(', ')} without an opset import; add them to opsets`,
      );
    }
    for (const r of this.requirements) {
      const v = opsets[r.domain];
      if (v === undefined || v < r.min || (r.max !== undefined && v >= r.max)) {
        const range = r.max === undefined ? `>= ${r.min}` : `in [${r.min}, ${r.max})`;
        throw new Error(
          `graph ${this.name}: ${r.why} needs opset '${r.domain}' ${range}, model imports ${v ?? 'none'}`,
        );
      }
    }
    const init: ConstructorParameters<typeof OnnxModel>[0] = { graph, opsets };
    if (options.producer !== undefined) init.producerName = options.producer;
    if (options.producerVersion !== undefined) init.producerVersion = options.producerVersion;
    if (options.irVersion !== undefined) init.irVersion = options.irVersion;
    if (options.docString !== undefined) init.docString = options.docString;
    if (options.metadata !== undefined) init.metadataProps = options.metadata;
    if (options.domain !== undefined) init.domain = options.domain;
    if (options.modelVersion !== undefined) init.modelVersion = options.modelVersion;
    if (options.functions !== undefined) init.functions = options.functions;
    return new OnnxModel(init);
  }

  /** The name a value (or alias) stands for now. */
  resolve(ref: ValueRef): string {
    let name = typeof ref === 'string' ? ref : ref.name;
    for (let seen = 0; this.aliases.has(name) && seen < 64; seen++) name = this.aliases.get(name)!;
    return this.outer && !this.definesLocally(name) ? this.outer.resolve(name) : name;
  }

  private defines(name: string): boolean {
    return this.definesLocally(name) || (this.outer?.defines(name) ?? false);
  }

  private definesLocally(name: string): boolean {
    return (
      this.producers.has(name) ||
      this.graph.inputs.some((i) => i.name === name) ||
      this.graph.initializers.some((t) => t.name === name)
    );
  }

  private claim(name: string): void {
    if (name.length === 0) throw new Error(`graph ${this.name}: empty value name`);
    if (this.names.has(name)) throw new Error(`graph ${this.name}: the name ${name} is already used`);
    this.names.add(name);
  }

  private addNode(
    opType: string,
    inputs: readonly InputRef[],
    outputCount: number,
    attrs: Record<string, AttributeInput | undefined>,
    options: NodeOptions,
  ): Value[] {
    const name = this.uniqueName(options.name ?? opType);
    let outputs: string[];
    if (options.outputs) {
      if (options.outputs.length !== outputCount) {
        throw new Error(`node ${name}: ${outputCount} output(s) expected, ${options.outputs.length} name(s) given`);
      }
      for (const o of options.outputs) if (o !== '') this.claim(o);
      outputs = [...options.outputs];
    } else {
      outputs = Array.from({ length: outputCount }, (_, i) =>
        this.uniqueName(outputCount === 1 ? `${name}_out` : `${name}_out${i}`),
      );
    }
    const attributes: Record<string, AttributeValue> = {};
    for (const [k, v] of Object.entries(attrs)) if (v !== undefined) attributes[k] = toAttribute(k, v);
    const node: OnnxNode = {
      name,
      opType,
      domain: options.domain ?? '',
      inputs: inputs.map((i) => (i === null ? '' : this.resolve(i))),
      outputs,
      attributes,
    };
    if (options.docString) node.docString = options.docString;
    this.graph.nodes.push(node);
    for (const o of outputs) if (o !== '') this.producers.set(o, node);
    return outputs.map((o) => ({ name: o }));
  }

  private rename(from: string, to: string): void {
    this.claim(to);
    renameIn(this.graph, from, to);
    const producer = this.producers.get(from)!;
    this.producers.delete(from);
    this.producers.set(to, producer);
    this.aliases.set(from, to);
  }
}

// Subgraphs already attached (If/Loop bodies reading the value) must follow the rename too.
function renameIn(graph: OnnxGraph, from: string, to: string): void {
  for (const node of graph.nodes) {
    node.inputs = node.inputs.map((i) => (i === from ? to : i));
    node.outputs = node.outputs.map((o) => (o === from ? to : o));
    for (const a of Object.values(node.attributes)) {
      if (a.type === 'graph') renameIn(a.value, from, to);
      else if (a.type === 'graphs') for (const g of a.value) renameIn(g, from, to);
    }
  }
  for (const v of graph.valueInfo) if (v.name === from) v.name = to;
}

function collectDomains(graph: OnnxGraph, into: Set<string>): void {
  for (const node of graph.nodes) {
    into.add(node.domain);
    for (const a of Object.values(node.attributes)) {
      if (a.type === 'graph') collectDomains(a.value, into);
      else if (a.type === 'graphs') for (const g of a.value) collectDomains(g, into);
    }
  }
}

// The builder keeps its graph; hand out a copy so later edits on either side do not leak. Tensor data is shared, not copied.
function structuredCloneGraph(g: OnnxGraph): OnnxGraph {
  const out: OnnxGraph = {
    ...g,
    nodes: g.nodes.map((n) => ({
      ...n,
      inputs: [...n.inputs],
      outputs: [...n.outputs],
      attributes: { ...n.attributes },
    })),
    inputs: g.inputs.map((v) => ({ ...v })),
    outputs: g.outputs.map((v) => ({ ...v })),
    initializers: g.initializers.map((t) => ({ ...t, dims: [...t.dims] })),
    sparseInitializers: [...g.sparseInitializers],
    valueInfo: g.valueInfo.map((v) => ({ ...v })),
    quantizationAnnotations: [...g.quantizationAnnotations],
  };
  return out;
}
