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
import { blockSizeFor, quantizeBlocks, type Int8Blocks, type WeightLayout } from './block-quantizer.js';

/** Settings of the `int8` transform (the plugin's config section). */
export interface Int8Options {
  /**
   * MatMulNBits `accuracy_level`: 4 computes with int8 activations quantized per block (ORT's fast CPU kernel, as
   * llama.cpp does for Q8_0); 0 dequantizes the weights and computes in float32 (exact on the 8-bit weights, slower).
   */
  accuracyLevel: 0 | 1 | 2 | 3 | 4;
  /** Weights per block along the input axis (a power of two ≥ 16); 32 is GGUF Q8_0's. */
  blockSize: number;
}

/** What one rewrite did. */
export interface Int8Report {
  /** MatMul / Gemm nodes now running MatMulNBits. */
  nodes: number;
  /** Gather nodes (embedding lookups) now running GatherBlockQuantized. */
  embeddings: number;
  /** Distinct weight matrices stored 8-bit. */
  weights: number;
  /** Of those, how many came back exactly on dequantization (already 8-bit, e.g. GGUF Q8_0 blocks). */
  lossless: number;
  /** Bytes of the float weights replaced, and of their 8-bit blocks plus scales. */
  floatBytes: number;
  int8Bytes: number;
  /** Weights left float, with why (`B is float16` …). */
  skipped: { name: string; reason: string }[];
  /** Largest |w − scale·q| over every quantized weight. */
  maxError: number;
}

const MS_DOMAIN = 'com.microsoft';
const NOT_CONSTANT = 'B is not a constant';

/** The settings the plugin uses when its config says nothing. */
export const DEFAULT_INT8_OPTIONS: Int8Options = { accuracyLevel: 4, blockSize: 32 };

/**
 * Weight-only int8: every MatMul (and plain Gemm) whose B is a constant float32 matrix becomes a com.microsoft
 * MatMulNBits node with 8-bit blocks and one float scale per block, and every embedding lookup (a Gather of rows of a
 * constant float32 matrix) a GatherBlockQuantized node over the same blocks along each row. Inputs, outputs and every
 * other node stay as they are.
 */
export function quantizeInt8(
  model: OnnxModel,
  options: Int8Options = DEFAULT_INT8_OPTIONS,
  progress: Progress = noProgress,
): Int8Report {
  const graph = model.graph;
  const initializers = new Map(graph.initializers.map((t) => [t.name, t]));
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const graphOutputs = new Set(graph.outputs.map((o) => o.name));
  const uses = new Map<string, number>();
  for (const node of graph.nodes) for (const input of node.inputs) uses.set(input, (uses.get(input) ?? 0) + 1);
  for (const name of graphOutputs) uses.set(name, (uses.get(name) ?? 0) + 1);

  const report: Int8Report = {
    nodes: 0,
    embeddings: 0,
    weights: 0,
    lossless: 0,
    floatBytes: 0,
    int8Bytes: 0,
    skipped: [],
    maxError: 0,
  };
  const quantized = new Map<string, { blocks: Int8Blocks; data: string; scales: string; K: number; N: number }>();
  const replaced = new Map<string, number>();
  const names = new Set([...initializers.keys(), ...graph.nodes.flatMap((n) => [...n.outputs, n.name])]);
  const fresh = (base: string): string => {
    let name = base;
    for (let i = 1; names.has(name); i++) name = `${base}_${i}`;
    names.add(name);
    return name;
  };

  const tally = (tensor: OnnxTensor, blocks: Int8Blocks, extraBytes = 0): void => {
    report.weights++;
    if (blocks.lossless) report.lossless++;
    report.maxError = Math.max(report.maxError, blocks.maxError);
    report.floatBytes += tensorByteLength(tensor);
    report.int8Bytes += blocks.data.byteLength + blocks.scales.byteLength + extraBytes;
  };

  // An embedding: rows of a constant [rows, width] float32 matrix picked by index, blocks along each row.
  const embeddings = new Map<string, { data: string; scales: string; zeroPoints: string; blockSize: number }>();
  const embeddingOf = (node: OnnxNode): { tensor: OnnxTensor; blockSize: number } | string => {
    const name = node.inputs[0] ?? '';
    const tensor = initializers.get(name);
    if (!tensor) return NOT_CONSTANT;
    if (graphInputs.has(name)) return 'the table is also a graph input (callers may override it)';
    if (tensor.dtype !== 'float32') return `the table is ${tensor.dtype}`;
    if (tensor.dims.length !== 2) return `the table has rank ${tensor.dims.length}`;
    if (tensor.external) return 'the table is external and not loaded';
    if ((attrs(node).axis ?? 0) !== 0) return 'Gather along an axis other than the rows';
    const width = tensor.dims[1]!;
    const blockSize = blockSizeFor(width, options.blockSize);
    if (width % blockSize !== 0) return `rows of ${width} do not split into blocks of ${blockSize}`;
    return { tensor, blockSize };
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
  for (const node of graph.nodes) {
    // One unit per node of the source graph: the caller started the operation with their count.
    progress.advance(1);
    if (node.opType === 'Gather' && (node.domain === '' || node.domain === 'ai.onnx')) {
      const found = embeddingOf(node);
      if (typeof found === 'string') {
        if (found !== NOT_CONSTANT) report.skipped.push({ name: node.inputs[0] ?? node.name, reason: found });
        nodes.push(node);
        continue;
      }
      const { tensor, blockSize } = found;
      const [rows, width] = tensor.dims as [number, number];
      let e = embeddings.get(tensor.name);
      if (!e) {
        // Row r's blocks are column r's of a transposed [width, rows] weight: the layout MatMulNBits reads.
        const blocks = quantizeBlocks(tensor.data as Float32Array, width, rows, blockSize, 'nk');
        const perRow = blocks.blocksPerColumn;
        e = {
          data: fresh(`${tensor.name}.q8`),
          scales: fresh(`${tensor.name}.scales`),
          zeroPoints: fresh(`${tensor.name}.zero_points`),
          blockSize,
        };
        graph.initializers.push(createTensor(e.data, blocks.data, [rows, width], 'uint8'));
        graph.initializers.push(createTensor(e.scales, blocks.scales, [rows, perRow]));
        // The bytes are q + 128, as MatMulNBits stores them; GatherBlockQuantized is told so by its zero points.
        graph.initializers.push(
          createTensor(e.zeroPoints, new Uint8Array(rows * perRow).fill(128), [rows, perRow], 'uint8'),
        );
        embeddings.set(tensor.name, e);
        tally(tensor, blocks, rows * perRow);
      }
      replaced.set(tensor.name, (replaced.get(tensor.name) ?? 0) + 1);
      nodes.push({
        name: node.name,
        opType: 'GatherBlockQuantized',
        domain: MS_DOMAIN,
        inputs: [e.data, node.inputs[1]!, e.scales, e.zeroPoints],
        outputs: node.outputs,
        attributes: {
          block_size: attr.int(e.blockSize),
          gather_axis: attr.int(0),
          quantize_axis: attr.int(1),
          bits: attr.int(8),
        },
      });
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
    if (!q) {
      const blocks = quantizeBlocks(tensor.data as Float32Array, K, N, blockSizeFor(K, options.blockSize), layout);
      const data = fresh(`${tensor.name}.q8`);
      const scales = fresh(`${tensor.name}.scales`);
      graph.initializers.push(createTensor(data, blocks.data, [N, blocks.blocksPerColumn, blocks.blockSize], 'uint8'));
      graph.initializers.push(createTensor(scales, blocks.scales, [N * blocks.blocksPerColumn]));
      q = { blocks, data, scales, K, N };
      quantized.set(key, q);
      tally(tensor, blocks);
    }
    replaced.set(tensor.name, (replaced.get(tensor.name) ?? 0) + 1);
    const bias = isGemm ? node.inputs[2] : undefined;
    const output = node.outputs[0]!;
    const product = bias ? fresh(`${output}.matmul`) : output;
    nodes.push({
      name: node.name,
      opType: 'MatMulNBits',
      domain: MS_DOMAIN,
      inputs: [node.inputs[0]!, q.data, q.scales],
      outputs: [product],
      attributes: {
        K: attr.int(q.K),
        N: attr.int(q.N),
        bits: attr.int(8),
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
        reason: 'also read by a node that is not a MatMul or Gather: kept float32 beside its 8-bit copy',
      });
  }
  if (report.nodes + report.embeddings > 0) model.opsets[MS_DOMAIN] = Math.max(model.opsets[MS_DOMAIN] ?? 1, 1);
  return report;
}

function attrs(node: OnnxNode): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(node.attributes) as [string, AttributeValue][]) {
    if (v.type === 'int') out[k] = Number(v.value);
    else if (v.type === 'float') out[k] = v.value;
  }
  return out;
}

/** One line for the load log. */
export function describeInt8(report: Int8Report): string {
  if (report.nodes + report.embeddings === 0)
    return `no MatMul or embedding with a constant float32 weight; graph unchanged (${report.skipped.length} skipped)`;
  const ratio = report.int8Bytes > 0 ? report.floatBytes / report.int8Bytes : 0;
  const embeddings = report.embeddings > 0 ? ` and ${report.embeddings} Gather → GatherBlockQuantized,` : '';
  return (
    `${report.nodes} MatMul/Gemm nodes → MatMulNBits${embeddings} 8-bit over ${report.weights} weights (${report.lossless} exactly on an 8-bit grid), ` +
    `${(report.floatBytes / 1024).toFixed(1)} KiB → ${(report.int8Bytes / 1024).toFixed(1)} KiB (${ratio.toFixed(2)}× smaller)` +
    (report.skipped.length > 0 ? `; ${report.skipped.length} left float32` : '')
  );
}

/** The `int8` model transform the plugin contributes. */
export class Int8WeightTransform implements ModelTransform {
  readonly name = 'int8';
  readonly description =
    'weight-only int8: MatMul weights and embeddings as 8-bit blocks with per-block scales (ORT MatMulNBits, GatherBlockQuantized)';
  readonly fingerprint: string;

  constructor(readonly options: Int8Options = DEFAULT_INT8_OPTIONS) {
    // Bumped when the rewrite itself changes.
    this.fingerprint = `int8-r2;block=${options.blockSize};accuracy=${options.accuracyLevel}`;
  }

  transform(model: OnnxModel, context: ModelTransformContext): ModelTransformResult {
    const progress = context.progress ?? noProgress;
    progress.start(model.graph.nodes.length, `quantizing ${context.model} to int8`);
    try {
      return { model, summary: describeInt8(quantizeInt8(model, this.options, progress)) };
    } finally {
      progress.done();
    }
  }
}
