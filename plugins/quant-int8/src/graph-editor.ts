import { attr, type AttributeValue, type OnnxModel, type OnnxNode, type OnnxTensor } from '@nucleus/sdk/onnx';

/** What a rewrite needs to know about a graph while it changes it: its constants, who reads what, unused names. */
export class GraphEditor {
  readonly initializers: Map<string, OnnxTensor>;
  readonly graphInputs: Set<string>;
  readonly #uses = new Map<string, number>();
  readonly #names: Set<string>;

  constructor(readonly model: OnnxModel) {
    const graph = model.graph;
    this.initializers = new Map(graph.initializers.map((t) => [t.name, t]));
    this.graphInputs = new Set(graph.inputs.map((i) => i.name));
    for (const node of graph.nodes) for (const input of node.inputs) this.#uses.set(input, this.uses(input) + 1);
    for (const o of graph.outputs) this.#uses.set(o.name, this.uses(o.name) + 1);
    this.#names = new Set([
      ...this.initializers.keys(),
      ...this.graphInputs,
      ...graph.nodes.flatMap((n) => [...n.outputs, n.name]),
    ]);
  }

  /** Readers of `name` in the source graph (graph outputs count as one). */
  uses(name: string): number {
    return this.#uses.get(name) ?? 0;
  }

  /** A name no value, initializer or node has yet, built from `base`. */
  fresh(base: string): string {
    let name = base;
    for (let i = 1; this.#names.has(name); i++) name = `${base}_${i}`;
    this.#names.add(name);
    return name;
  }

  /** The default-domain opset the model imports. */
  get opset(): number {
    return this.model.opsets[''] ?? this.model.opsets['ai.onnx'] ?? 1;
  }

  /** A constant float32 weight at `name` (not a graph input callers could override), or why it is not one. */
  constantFloat(name: string | undefined): OnnxTensor | string {
    const tensor = name ? this.initializers.get(name) : undefined;
    if (!tensor) return 'the weight is not a constant';
    if (this.graphInputs.has(tensor.name)) return 'the weight is also a graph input (callers may override it)';
    if (tensor.external) return 'the weight is external and not loaded';
    if (tensor.dtype !== 'float32') return `the weight is ${tensor.dtype}`;
    return tensor;
  }

  /**
   * Puts the nodes `rewrite` gives in place of each node it answers for (the graph stays sorted when they come before
   * the rewritten node), then drops the initializers in `replaced` that no node reads any more.
   */
  replaceNodes(rewrite: (n: OnnxNode) => OnnxNode[] | undefined, replaced: Map<string, number>): void {
    this.model.graph.nodes = this.model.graph.nodes.flatMap((n) => rewrite(n) ?? [n]);
    this.dropReplaced(replaced);
  }

  /** Drops initializers in `replaced` that no node reads any more (`replaced` counts the reads that were rewritten). */
  dropReplaced(replaced: Map<string, number>): void {
    const graph = this.model.graph;
    graph.initializers = graph.initializers.filter(
      (t) => !replaced.has(t.name) || this.uses(t.name) > replaced.get(t.name)!,
    );
  }
}

/** A default-domain node. */
export function node(
  opType: string,
  inputs: string[],
  outputs: string[],
  name: string,
  attributes: Record<string, AttributeValue> = {},
  domain = '',
): OnnxNode {
  return { name, opType, domain, inputs, outputs, attributes };
}

/** The int and float attributes of a node, as numbers. */
export function numericAttributes(n: OnnxNode): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(n.attributes) as [string, AttributeValue][]) {
    if (v.type === 'int') out[k] = Number(v.value);
    else if (v.type === 'float') out[k] = v.value;
  }
  return out;
}

/** `attr.int`, re-exported so the rewrites read alike. */
export const intAttr = attr.int;
