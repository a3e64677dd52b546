import {
  noProgress,
  type ModelTransform,
  type ModelTransformContext,
  type ModelTransformResult,
  type Progress,
} from '@nucleus/sdk';
import {
  attr,
  createTensor,
  tensorByteLength,
  type AttributeValue,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from '@nucleus/sdk/onnx';
import {
  blockSizeFor,
  packZeroPoints4,
  quantizeBlocks,
  type QuantizedBlocks,
  type WeightLayout,
} from './block-quantizer.js';
import { parseQuantizeOptions } from './quantize-options.js';
import { computeRopeTables, findRopeTables, type RopeTablesReport } from './rope-tables.js';

/** Settings of the weight-only transforms (`int8`, `int4`; the plugin's config section). */
export interface WeightOnlyOptions {
  /**
   * MatMulNBits `accuracy_level`: 4 computes with int8 activations quantized per block (ORT's fast CPU kernel, as
   * llama.cpp does for Q8_0); 0 dequantizes the weights and computes in float32 (exact on the 8-bit weights, slower).
   */
  accuracyLevel: 0 | 1 | 2 | 3 | 4;
  /** Weights per block along the input axis (a power of two ≥ 16); 32 is GGUF Q8_0's. */
  blockSize: number;
  /** Bits per weight: 8 (default) or 4. */
  bits?: 4 | 8;
  /** Blocks without zero points (default), or with one per block spanning the block's own range. */
  symmetric?: boolean;
  /** RoPE cos/sin tables computed by the graph from their frequencies (`computed`, int4's default) or kept stored. */
  ropeTables?: 'computed' | 'stored';
}

/** The settings of the `int8` transform. */
export type Int8Options = WeightOnlyOptions;

/** What one rewrite did. */
export interface WeightOnlyReport {
  /** Bits per stored weight. */
  bits?: 4 | 8;
  /** MatMul / Gemm nodes now running MatMulNBits. */
  nodes: number;
  /** Gather nodes (embedding lookups) now running GatherBlockQuantized. */
  embeddings: number;
  /** Distinct weight matrices stored 8-bit. */
  weights: number;
  /** MatMul weights equal to an embedding's transpose (a tied classifier), reading the embedding's blocks. */
  tied?: number;
  /** Of those, how many came back exactly on dequantization (already 8-bit, e.g. GGUF Q8_0 blocks). */
  lossless: number;
  /** Bytes of the float weights replaced, and of their blocks plus scales and zero points. */
  floatBytes: number;
  int8Bytes: number;
  /** Weights left float, with why (`B is float16` …). */
  skipped: { name: string; reason: string }[];
  /** Largest |w − scale·q| over every quantized weight. */
  maxError: number;
  /** RoPE tables now computed by the graph (`ropeTables: computed`). */
  rope?: RopeTablesReport;
}

/** What an `int8` rewrite did. */
export type Int8Report = WeightOnlyReport;

const MS_DOMAIN = 'com.microsoft';
const NOT_CONSTANT = 'B is not a constant';

/** The settings the plugin uses when its config says nothing. */
export const DEFAULT_INT8_OPTIONS: Int8Options = { accuracyLevel: 4, blockSize: 32 };

/**
 * Weight-only int8 or int4: every MatMul (and plain Gemm) whose B is a constant float32 matrix becomes a com.microsoft
 * MatMulNBits node with blocks of `bits`-bit weights and one float scale (and, asymmetric, one zero point) per block,
 * and every embedding lookup (a Gather of rows of a constant float32 matrix) a GatherBlockQuantized node over the same
 * blocks along each row. Inputs, outputs and every other node stay as they are.
 */
export function quantizeWeights(
  model: OnnxModel,
  options: WeightOnlyOptions = DEFAULT_INT8_OPTIONS,
  progress: Progress = noProgress,
): WeightOnlyReport {
  // RoPE tables are read by a Gather of positions like an embedding, but 4- or 8-bit blocks would move every angle:
  // computed first (nothing left to quantize) or kept float32.
  const sourceNodes = model.graph.nodes.length;
  const rope = options.ropeTables === 'computed' ? computeRopeTables(model) : undefined;
  const ropeTables = new Set(findRopeTables(model).flatMap((p) => [p.cos.name, p.sin.name]));
  const bits = options.bits ?? 8;
  const scheme = { bits, symmetric: options.symmetric ?? true };
  const suffix = `q${bits}`;
  const graph = model.graph;
  const initializers = new Map(graph.initializers.map((t) => [t.name, t]));
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const uses = new Map<string, number>();
  for (const node of graph.nodes) for (const input of node.inputs) uses.set(input, (uses.get(input) ?? 0) + 1);
  for (const name of graphOutputs) uses.set(name, (uses.get(name) ?? 0) + 1);

  const report: WeightOnlyReport = {
    bits,
    nodes: 0,
    embeddings: 0,
    tied: 0,
    weights: 0,
    lossless: 0,
    floatBytes: 0,
    int8Bytes: 0,
    skipped: [],
    maxError: 0,
    ...(rope && { rope }),
  };
  const quantized = new Map<
    string,
    { blocks: QuantizedBlocks; data: string; scales: string; zeroPoints?: string; K: number; N: number }
  >();
  const replaced = new Map<string, number>();
  const names = new Set([...initializers.keys(), ...graph.nodes.flatMap((n) => [...n.outputs, n.name])]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };

  const tally = (tensor: OnnxTensor, blocks: QuantizedBlocks, extraBytes = 0): void => {
    report.weights++;
    if (blocks.lossless) report.lossless++;
    report.maxError = Math.max(report.maxError, blocks.maxError);
    report.floatBytes += tensorByteLength(tensor);
    report.int8Bytes += blocks.data.byteLength + blocks.scales.byteLength + extraBytes;
  };

  // An embedding: rows of a constant [rows, width] float32 matrix picked by index, blocks along each row.
  interface Embedding {
    blocks: QuantizedBlocks;
    data: string;
    scales: string;
    zeroPoints?: string;
    blockSize: number;
    quantizeAxis: number;
  }
  const embeddings = new Map<string, Embedding>();
  const embeddingOf = (node: OnnxNode): { tensor: OnnxTensor; blockSize: number } | string => {
    const name = node.inputs[0] ?? '';
    const tensor = initializers.get(name);
    if (!tensor) return NOT_CONSTANT;
    if (graphInputs.has(name)) return 'the table is also a graph input (callers may override it)';
    if (ropeTables.has(name)) return 'a RoPE table (cos/sin of positions): kept float32';
    if (tensor.dtype !== 'float32') return `the table is ${tensor.dtype}`;
    if (tensor.dims.length !== 2) return `the table has rank ${tensor.dims.length}`;
    if (tensor.external) return 'the table is external and not loaded';
    if ((attrs(node).axis ?? 0) !== 0) return 'Gather along an axis other than the rows';
    const width = tensor.dims[1]!;
    const blockSize = blockSizeFor(width, options.blockSize);
    if (width % blockSize !== 0) return `rows of ${width} do not split into blocks of ${blockSize}`;
    return { tensor, blockSize };
  };
  const embed = (tensor: OnnxTensor, blockSize: number): Embedding => {
    const known = embeddings.get(tensor.name);
    if (known) return known;
    const [rows, width] = tensor.dims as [number, number];
    // Row r's blocks are column r's of a transposed [width, rows] weight: the layout MatMulNBits reads.
    const blocks = quantizeBlocks(tensor.data as Float32Array, width, rows, blockSize, 'nk', scheme);
    const perRow = blocks.blocksPerColumn;
    const e: Embedding = {
      blocks,
      data: fresh(`${tensor.name}.${suffix}`),
      scales: fresh(`${tensor.name}.scales`),
      blockSize,
      quantizeAxis: bits === 8 ? 1 : 2,
    };
    // 4-bit rows are [blocks, blockSize / 2] bytes, quantized along their last axis, one zero point a byte.
    const dataDims = bits === 8 ? [rows, width] : [rows, perRow, blockSize / 2];
    const paramDims = bits === 8 ? [rows, perRow] : [rows, perRow, 1];
    graph.initializers.push(createTensor(e.data, blocks.data, dataDims, 'uint8'));
    graph.initializers.push(createTensor(e.scales, blocks.scales, paramDims));
    // Symmetric bytes are q + 2^(bits−1), GatherBlockQuantized's default zero point for uint8: none stored.
    if (blocks.zeroPoints) {
      e.zeroPoints = fresh(`${tensor.name}.zero_points`);
      graph.initializers.push(createTensor(e.zeroPoints, blocks.zeroPoints, paramDims, 'uint8'));
    }
    tally(tensor, blocks, blocks.zeroPoints ? rows * perRow : 0);
    embeddings.set(tensor.name, e);
    return e;
  };
  // Tables some Gather picks rows of: a MatMul weight equal to one's transpose (a tied classifier) reads its blocks.
  const tables = graph.nodes
    .filter((n) => n.opType === 'Gather' && (n.domain === '' || n.domain === 'ai.onnx'))
    .map((n) => embeddingOf(n))
    .filter((f): f is { tensor: OnnxTensor; blockSize: number } => typeof f !== 'string');
  const tiedTable = (
    tensor: OnnxTensor,
    layout: WeightLayout,
  ): { tensor: OnnxTensor; blockSize: number } | undefined => {
    const [K, N] = layout === 'kn' ? [tensor.dims[0]!, tensor.dims[1]!] : [tensor.dims[1]!, tensor.dims[0]!];
    const w = tensor.data as Float32Array;
    return tables.find(({ tensor: t, blockSize }) => {
      if (t.dims[0] !== N || t.dims[1] !== K || blockSize !== blockSizeFor(K, options.blockSize)) return false;
      if (t === tensor) return layout === 'nk';
      const e = t.data as Float32Array;
      for (let n = 0; n < N; n++)
        for (let k = 0; k < K; k++) if (e[n * K + k] !== (layout === 'kn' ? w[k * N + n] : w[n * K + k])) return false;
      return true;
    });
  };
  // An initializer of int64 `values`, for the Reshapes that let a MatMulNBits read an embedding's blocks.
  const shapeConstant = (base: string, values: number[]): string => {
    const name = fresh(base);
    graph.initializers.push(createTensor(name, BigInt64Array.from(values.map(BigInt)), [values.length]));
    return name;
  };

  const weightOf = (node: OnnxNode): { tensor: OnnxTensor; layout: WeightLayout } | string => {
    const name = node.inputs[1] ?? '';
    const tensor = initializers.get(name);
    if (!tensor) return NOT_CONSTANT;
    if (graphInputs.has(name)) return 'B is also a graph input (callers may override it)';
    if (tensor.dtype !== 'float32') return `B is ${tensor.dtype}`;
    if (tensor.dims.length !== 2) return `B has rank ${tensor.dims.length}`;
    if (tensor.external) return 'B is external and not loaded';
    if (node.opType === 'MatMul') return { tensor, layout: 'kn' };
    const a = attrs(node);
    if ((a.alpha ?? 1) !== 1 || (a.transA ?? 0) !== 0) return 'Gemm with alpha ≠ 1 or transA';
    if (node.inputs[2] && (a.beta ?? 1) !== 1) return 'Gemm with beta ≠ 1';
    return { tensor, layout: (a.transB ?? 0) === 1 ? 'nk' : 'kn' };
  };

  const nodes: OnnxNode[] = [];
  const ropeNodes = graph.nodes.length - sourceNodes;
  for (const [i, node] of graph.nodes.entries()) {
    // One unit per node of the source graph (not the RoPE nodes added before it): the caller started with their count.
    if (i >= ropeNodes) progress.advance(1);
    if (node.opType === 'Gather' && (node.domain === '' || node.domain === 'ai.onnx')) {
      const found = embeddingOf(node);
      if (typeof found === 'string') {
        if (found !== NOT_CONSTANT) report.skipped.push({ name: node.inputs[0] ?? node.name, reason: found });
        nodes.push(node);
        continue;
      }
      const { tensor, blockSize } = found;
      const e = embed(tensor, blockSize);
      replaced.set(tensor.name, (replaced.get(tensor.name) ?? 0) + 1);
      nodes.push({
        name: node.name,
        opType: 'GatherBlockQuantized',
        domain: MS_DOMAIN,
        inputs: e.zeroPoints ? [e.data, node.inputs[1]!, e.scales, e.zeroPoints] : [e.data, node.inputs[1]!, e.scales],
        outputs: bits === 8 ? node.outputs : [fresh(`${node.outputs[0]!}.blocks`)],
        attributes: {
          block_size: attr.int(e.blockSize),
          gather_axis: attr.int(0),
          quantize_axis: attr.int(e.quantizeAxis),
          bits: attr.int(bits),
        },
      });
      // 4-bit rows come out as [ids…, blocks, blockSize]: joined back into [ids…, width].
      if (bits === 4) nodes.push(...joinBlocks(nodes.at(-1)!.outputs[0]!, node, tensor.dims[1]!, fresh));
      report.embeddings++;
      continue;
    }
    const isGemm = node.opType === 'Gemm';
    if ((node.opType !== 'MatMul' && !isGemm) || (node.domain !== '' && node.domain !== 'ai.onnx')) {
      nodes.push(node);
      continue;
    }
    const found = weightOf(node);
    // Products of two activations (attention scores) are not weights: nothing to report.
    if (found === NOT_CONSTANT) {
      nodes.push(node);
      continue;
    }
    if (typeof found === 'string') {
      report.skipped.push({ name: node.inputs[1] ?? node.name, reason: found });
      nodes.push(node);
      continue;
    }
    const { tensor, layout } = found;
    const [K, N] = layout === 'kn' ? [tensor.dims[0]!, tensor.dims[1]!] : [tensor.dims[1]!, tensor.dims[0]!];
    const key = `${tensor.name}\u0000${layout}`;
    let q = quantized.get(key);
    const tied = q ? undefined : tiedTable(tensor, layout);
    if (tied) {
      // The classifier tied to an embedding: the same blocks, stored once; Reshapes (folded by ORT when it opens the
      // session) give them the shapes MatMulNBits reads.
      const e = embed(tied.tensor, tied.blockSize);
      const perColumn = e.blocks.blocksPerColumn;
      const data = bits === 8 ? fresh(`${tensor.name}.${suffix}`) : e.data;
      const scales = fresh(`${tensor.name}.scales`);
      if (bits === 8)
        nodes.push(reshape(e.data, shapeConstant(`${data}.shape`, [N, perColumn, e.blockSize]), data, fresh));
      nodes.push(reshape(e.scales, shapeConstant(`${scales}.shape`, [N, perColumn]), scales, fresh));
      q = { blocks: e.blocks, data, scales, K, N };
      if (e.blocks.zeroPoints) {
        const packed = bits === 8 ? e.blocks.zeroPoints : packZeroPoints4(e.blocks.zeroPoints, N, perColumn);
        q.zeroPoints = fresh(`${tensor.name}.zero_points`);
        graph.initializers.push(createTensor(q.zeroPoints, packed, [packed.length], 'uint8'));
        report.int8Bytes += packed.length;
      }
      quantized.set(key, q);
      report.tied = (report.tied ?? 0) + 1;
    }
    if (!q) {
      const blockSize = blockSizeFor(K, options.blockSize);
      const blocks = quantizeBlocks(tensor.data as Float32Array, K, N, blockSize, layout, scheme);
      const data = fresh(`${tensor.name}.${suffix}`);
      const scales = fresh(`${tensor.name}.scales`);
      const dims = [N, blocks.blocksPerColumn, (blockSize * bits) / 8];
      graph.initializers.push(createTensor(data, blocks.data, dims, 'uint8'));
      graph.initializers.push(createTensor(scales, blocks.scales, [N * blocks.blocksPerColumn]));
      q = { blocks, data, scales, K, N };
      let zeroBytes = 0;
      if (blocks.zeroPoints) {
        const packed = bits === 8 ? blocks.zeroPoints : packZeroPoints4(blocks.zeroPoints, N, blocks.blocksPerColumn);
        q.zeroPoints = fresh(`${tensor.name}.zero_points`);
        graph.initializers.push(createTensor(q.zeroPoints, packed, [packed.length], 'uint8'));
        zeroBytes = packed.length;
      }
      quantized.set(key, q);
      tally(tensor, blocks, zeroBytes);
    }
    replaced.set(tensor.name, (replaced.get(tensor.name) ?? 0) + 1);
    const bias = isGemm ? node.inputs[2] : undefined;
    const output = node.outputs[0]!;
    const product = bias ? fresh(`${output}.matmul`) : output;
    nodes.push({
      name: node.name,
      opType: 'MatMulNBits',
      domain: MS_DOMAIN,
      inputs: q.zeroPoints ? [node.inputs[0]!, q.data, q.scales, q.zeroPoints] : [node.inputs[0]!, q.data, q.scales],
      outputs: [product],
      attributes: {
        K: attr.int(q.K),
        N: attr.int(q.N),
        bits: attr.int(bits),
        block_size: attr.int(q.blocks.blockSize),
        accuracy_level: attr.int(options.accuracyLevel),
      },
    });
    if (bias)
      nodes.push({
        name: fresh(`${node.name}.bias`),
        opType: 'Add',
        domain: '',
        inputs: [product, bias],
        outputs: [output],
        attributes: {},
      });
    report.nodes++;
  }
  graph.nodes = nodes;
  // A float weight goes once nothing reads it any more (a weight also read by, say, a Transpose stays).
  graph.initializers = graph.initializers.filter(
    (t) => !replaced.has(t.name) || (uses.get(t.name) ?? 0) > replaced.get(t.name)!,
  );
  for (const [name, count] of replaced) {
    if ((uses.get(name) ?? 0) > count)
      report.skipped.push({
        name,
        reason: `also read by a node that is not a MatMul or Gather: kept float32 beside its ${bits}-bit copy`,
      });
  }
  if (report.nodes + report.embeddings > 0) model.opsets[MS_DOMAIN] = Math.max(model.opsets[MS_DOMAIN] ?? 1, 1);
  return report;
}

function reshape(input: string, shape: string, output: string, fresh: (base: string) => string): OnnxNode {
  return {
    name: fresh(`${output}.Reshape`),
    opType: 'Reshape',
    domain: '',
    inputs: [input, shape],
    outputs: [output],
    attributes: {},
  };
}

// Reshape(rows, Concat(Shape(ids), [width])): the nodes that give a 4-bit GatherBlockQuantized's output its width back.
function joinBlocks(rows: string, gather: OnnxNode, width: number, fresh: (base: string) => string): OnnxNode[] {
  const base = gather.outputs[0]!;
  const [idsShape, widthName, shape] = [fresh(`${base}.ids_shape`), fresh(`${base}.width`), fresh(`${base}.shape`)];
  const constant = createTensor(widthName, BigInt64Array.from([BigInt(width)]), [1]);
  const plain = (opType: string, inputs: string[], outputs: string[], attributes = {}): OnnxNode => ({
    name: fresh(`${base}.${opType}`),
    opType,
    domain: '',
    inputs,
    outputs,
    attributes,
  });
  return [
    plain('Shape', [gather.inputs[1]!], [idsShape]),
    plain('Constant', [], [widthName], { value: { type: 'tensor', value: constant } }),
    plain('Concat', [idsShape, widthName], [shape], { axis: attr.int(0) }),
    plain('Reshape', [rows, shape], gather.outputs),
  ];
}

function attrs(node: OnnxNode): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(node.attributes) as [string, AttributeValue][]) {
    if (v.type === 'int') out[k] = Number(v.value);
    else if (v.type === 'float') out[k] = v.value;
  }
  return out;
}

/** Weight-only int8 with `options` (8-bit whatever `options.bits` says): the first version's entry point. */
export function quantizeInt8(
  model: OnnxModel,
  options: Int8Options = DEFAULT_INT8_OPTIONS,
  progress: Progress = noProgress,
): Int8Report {
  return quantizeWeights(model, { ...options, bits: 8 }, progress);
}

/** One line for the load log. */
export function describeWeightOnly(report: WeightOnlyReport): string {
  const bits = report.bits ?? 8;
  if (report.nodes + report.embeddings === 0)
    return `no MatMul or embedding with a constant float32 weight; graph unchanged (${report.skipped.length} skipped)`;
  const ratio = report.int8Bytes > 0 ? report.floatBytes / report.int8Bytes : 0;
  const embeddings = report.embeddings > 0 ? ` and ${report.embeddings} Gather → GatherBlockQuantized,` : '';
  return (
    `${report.nodes} MatMul/Gemm nodes → MatMulNBits${embeddings} ${bits}-bit over ${report.weights} weights (${report.lossless} exactly on an ${bits}-bit grid), ` +
    `${(report.floatBytes / 1024).toFixed(1)} KiB → ${(report.int8Bytes / 1024).toFixed(1)} KiB (${ratio.toFixed(2)}× smaller)` +
    (report.tied ? `; the tied classifier reads the embedding's blocks` : '') +
    (report.rope?.pairs
      ? `; RoPE tables computed in the graph (${(report.rope.removedBytes / 1024).toFixed(1)} KiB not stored)`
      : '') +
    (report.skipped.length > 0 ? `; ${report.skipped.length} left float32` : '')
  );
}

/** One line for the load log of an `int8` rewrite. */
export const describeInt8 = describeWeightOnly;

/** Per-model settings a `models[].quantize` object may give a weight-only transform, checked. */
export function weightOnlyOverrides(
  options: Readonly<Record<string, unknown>> | undefined,
  method = 'int8',
): Partial<WeightOnlyOptions> {
  return parseQuantizeOptions<Partial<WeightOnlyOptions>>('weightOnly', options, method);
}

/**
 * The `int8` and `int4` model transforms the plugin contributes: weight-only blocks run by MatMulNBits and
 * GatherBlockQuantized. `int4` defaults to symmetric blocks of 32 (GGUF Q4_0's rule).
 */
export class WeightOnlyTransform implements ModelTransform {
  readonly name: 'int8' | 'int4';
  readonly description: string;
  readonly fingerprint: string;
  readonly options: WeightOnlyOptions;

  constructor(options: WeightOnlyOptions = DEFAULT_INT8_OPTIONS, name: 'int8' | 'int4' = 'int8') {
    this.name = name;
    const bits = name === 'int8' ? 8 : 4;
    this.options = {
      ...options,
      bits,
      symmetric: options.symmetric ?? true,
      ropeTables: options.ropeTables ?? (bits === 4 ? 'computed' : 'stored'),
    };
    this.description = `weight-only ${name}: MatMul weights and embeddings as ${bits}-bit blocks with per-block scales (ORT MatMulNBits, GatherBlockQuantized)`;
    // Bumped when the rewrite itself changes (r3/r2: tied classifiers share the embedding's blocks, no zero points
    // stored for symmetric embeddings).
    this.fingerprint =
      name === 'int8' && this.options.symmetric
        ? `int8-r3;block=${options.blockSize};accuracy=${options.accuracyLevel};rope=${this.options.ropeTables}`
        : `${name}-r2;block=${options.blockSize};accuracy=${options.accuracyLevel};symmetric=${this.options.symmetric};rope=${this.options.ropeTables}`;
  }

  transform(model: OnnxModel, context: ModelTransformContext): ModelTransformResult {
    const progress = context.progress ?? noProgress;
    const options = { ...this.options, ...weightOnlyOverrides(context.options, this.name) };
    progress.start(model.graph.nodes.length, `quantizing ${context.model} to ${this.name}`);
    try {
      return { model, summary: describeWeightOnly(quantizeWeights(model, options, progress)) };
    } finally {
      progress.done();
    }
  }
}

/** The `int8` transform (the first version's class). */
export class Int8WeightTransform extends WeightOnlyTransform {
  constructor(options: Int8Options = DEFAULT_INT8_OPTIONS) {
    super(options, 'int8');
  }
}
