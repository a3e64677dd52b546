import { attr, GraphBuilder, type OnnxModel, type Value } from '../onnx/index.js';
import type { ContribIo, DecoderConfig } from './decoder-model.js';
import { ropeTables, type RopeLayout } from './rope.js';
import { checkLlamaWeights, type LlamaArchitecture, type LlamaWeights } from './llama-weights.js';
import { WeightNodes, type WeightNodeOptions } from './llama-graph-weights.js';
import { MS_DOMAIN } from './block-quantized-ops.js';

/** Which decoder graph `buildLlamaGraph` writes. */
export interface LlamaGraphOptions {
  /** The pairing the weights were trained with; GGUF `llama` and llama2.c are `interleaved`, HF checkpoints `half`. */
  ropeLayout: RopeLayout;
  /** `generic`: standard ops, Optimum I/O. `contrib`: ORT com.microsoft ops, I/O as `CONTRIB_IO` says. */
  style: 'generic' | 'contrib';
  /**
   * Contrib style only: RoPE as RotaryEmbedding nodes (`separate`, the default) or inside GroupQueryAttention
   * (`fused`, needs head size % 16 = 0 on ORT's CPU kernel). Only `separate` graphs output each step's new K and V
   * (`CONTRIB_IO.newKey`), since fused RoPE rotates K where no output can reach it.
   */
  rotary?: 'fused' | 'separate';
  /** `MatMulNBits` accuracy level of block-quantized weights (see `WeightNodeOptions`); default 0 (float32). */
  accuracyLevel?: WeightNodeOptions['accuracyLevel'];
  /** Graph name. */
  name?: string;
  /** Written into the model's metadata_props. */
  metadata?: Record<string, string>;
}

/** The ai.onnx opset the Llama graphs target. */
export const LLAMA_GRAPH_OPSET = 17;

/** I/O of the contrib style (see `ContribIo`), with the names this builder gives it. */
export const CONTRIB_IO: ContribIo = {
  positionIds: 'position_ids',
  seqlensK: 'seqlens_k',
  totalSequenceLength: 'total_sequence_length',
  pastKey: 'past_key_values.%d.key',
  pastValue: 'past_key_values.%d.value',
  presentKey: 'present.%d.key',
  presentValue: 'present.%d.value',
  newKey: 'new.%d.key',
  newValue: 'new.%d.value',
  padding: 'right',
  sharedBuffer: true,
  multiTokenStepNeedsBatch1: true,
};

/**
 * The decoder config of a graph {@link buildLlamaGraph} wrote for `arch` in `style`: what the engine needs to run
 * it. `maxContext` caps the architecture's positions.
 */
export function builtDecoderConfig(
  arch: LlamaArchitecture,
  style: 'generic' | 'contrib',
  tokens: { eosTokenIds: number[]; bosTokenId?: number; maxContext?: number },
): DecoderConfig {
  return {
    architecture: 'llama',
    vocabSize: arch.vocabSize,
    hiddenSize: arch.hiddenSize,
    numLayers: arch.numLayers,
    numHeads: arch.numHeads,
    numKvHeads: arch.numKvHeads,
    headDim: arch.headDim,
    maxContext: Math.min(arch.maxPositions, tokens.maxContext ?? Infinity),
    ...(tokens.bosTokenId !== undefined && { bosTokenId: tokens.bosTokenId }),
    eosTokenIds: tokens.eosTokenIds,
    graphStyle: style,
    kvDtype: 'float32',
    ...(style === 'contrib' ? { contribIo: { ...CONTRIB_IO } } : {}),
  };
}

/** Bumped whenever the graphs built from the same weights change, so cached ones are rebuilt. */
export const LLAMA_GRAPH_REVISION = 6;

/**
 * Builds a Llama decoder (RMSNorm, GQA attention with RoPE, SwiGLU FFN) as an ONNX model. Both styles take the
 * same weights and compute the same numbers; they differ in I/O and in which ops carry attention.
 */
export function buildLlamaGraph(weights: LlamaWeights, arch: LlamaArchitecture, options: LlamaGraphOptions): OnnxModel {
  checkLlamaWeights(weights, arch);
  if (arch.headDim % 2 !== 0) throw new Error(`head dim ${arch.headDim} is odd; RoPE needs pairs`);
  if (arch.numHeads % arch.numKvHeads !== 0)
    throw new Error(`${arch.numHeads} heads do not split into ${arch.numKvHeads} kv groups`);
  const g = new GraphBuilder(options.name ?? 'llama_decoder', { opset: LLAMA_GRAPH_OPSET });
  const nodes = new WeightNodes(g, { accuracyLevel: options.accuracyLevel ?? 0 });
  if (options.style === 'contrib') {
    const fused = options.rotary === 'fused';
    if (fused && arch.headDim % 16 !== 0) {
      throw new Error(`GroupQueryAttention's own RoPE needs head size % 16 = 0, this model's is ${arch.headDim}`);
    }
    buildContrib(g, nodes, weights, arch, options.ropeLayout, fused);
  } else {
    buildGeneric(g, nodes, weights, arch, options.ropeLayout);
  }
  return g.toModel({
    // Contrib attention and block-quantized weights both use com.microsoft ops; an unused import costs nothing.
    opsets: { [MS_DOMAIN]: 1 },
    producer: 'nucleus',
    docString: `Llama decoder (${options.style} style, ${options.ropeLayout} RoPE).`,
    metadata: {
      'nucleus.graph_style': options.style,
      'nucleus.rope_layout': options.ropeLayout,
      ...(options.metadata ?? {}),
    },
  });
}

function buildGeneric(
  g: GraphBuilder,
  nodes: WeightNodes,
  w: LlamaWeights,
  a: LlamaArchitecture,
  ropeLayout: RopeLayout,
): void {
  const o = g.ops;
  const H = a.hiddenSize;
  const D = a.headDim;
  const groups = a.numHeads / a.numKvHeads;

  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch_size', 'total_sequence_length']);
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const pasts: { key: Value; value: Value }[] = [];
  for (let l = 0; l < a.numLayers; l++) {
    const shape = ['batch_size', a.numKvHeads, 'past_sequence_length', D];
    pasts.push({
      key: g.input(`past_key_values.${l}.key`, 'float32', shape),
      value: g.input(`past_key_values.${l}.value`, 'float32', shape),
    });
  }

  // llama2.c's order: weight · (x · 1/sqrt(mean(x²) + eps)).
  const rmsNorm = (x: Value, name: string, weight: Float32Array): Value => {
    const meanSquare = o.reduceMean(o.mul(x, x), [-1]);
    const inv = g.node('Reciprocal', [o.sqrt(o.add(meanSquare, a.rmsNormEps))]);
    return o.mul(o.mul(x, inv), g.initializer(`${name}.weight`, weight, [H]));
  };

  // RoPE: cos/sin rows picked by position id, shaped to broadcast over the head axis.
  const tables = ropeTables(a.maxPositions, D, a.ropeTheta, w.ropeFreqFactors, a.ropeScaling);
  const cosTable = g.initializer('rope.cos', tables.cos, [a.maxPositions, D / 2]);
  const sinTable = g.initializer('rope.sin', tables.sin, [a.maxPositions, D / 2]);
  const cos = o.gather(cosTable, positionIds, 0); // [B,S,D/2]
  const sin = o.gather(sinTable, positionIds, 0);
  const rope =
    ropeLayout === 'interleaved'
      ? ropeInterleaved(g, o.unsqueeze(cos, [2, 4]), o.unsqueeze(sin, [2, 4]), D)
      : ropeHalf(g, o.unsqueeze(cos, [2]), o.unsqueeze(sin, [2]), D);

  // Mask [B,1,1,S,T]: key j is visible to query i (at cache index past+i) when j ≤ past+i and attention_mask[b,j] = 1.
  const seqLen = o.shape(inputIds, { start: 1, end: 2 });
  const totalLen = o.shape(attentionMask, { start: 1, end: 2 });
  const one = g.scalar(1, 'int64');
  const keyIndex = o.range(g.scalar(0, 'int64'), o.squeeze(totalLen, [0]), one);
  const queryIndex = o.range(o.squeeze(o.sub(totalLen, seqLen), [0]), o.squeeze(totalLen, [0]), one);
  let causal = g.node('Not', [o.greater(o.unsqueeze(keyIndex, [0]), o.unsqueeze(queryIndex, [1]))]); // [S,T]
  if (a.slidingWindow !== undefined) {
    // A sliding window also hides key j from query i once i − j ≥ window.
    const earliest = o.sub(o.unsqueeze(queryIndex, [1]), g.scalar(a.slidingWindow, 'int64'));
    causal = g.node('And', [causal, o.greater(o.unsqueeze(keyIndex, [0]), earliest)]);
  }
  const padVisible = o.unsqueeze(o.cast(attentionMask, 'bool'), [1, 2, 3]); // [B,1,1,1,T]
  const visible = g.node('And', [causal, padVisible]);
  const masked = g.scalar(-1e9);
  const scale = g.scalar(Math.sqrt(D));

  let x = nodes.embed(inputIds, 'model.embed_tokens', w.tokenEmbedding, a.vocabSize, H);
  for (let l = 0; l < a.numLayers; l++) {
    const lw = w.layers[l]!;
    const p = `model.layers.${l}`;
    const n = rmsNorm(x, `${p}.input_layernorm`, lw.attnNorm);
    const project = (name: string, m: typeof lw.q, heads: number, bias?: Float32Array): Value =>
      o.reshape(nodes.linear(n, `${p}.self_attn.${name}`, m, heads * D, H, bias), [0, 0, heads, D]);
    const q = rope(project('q_proj', lw.q, a.numHeads, lw.qBias));
    const k = rope(project('k_proj', lw.k, a.numKvHeads, lw.kBias));
    const v = project('v_proj', lw.v, a.numKvHeads, lw.vBias);
    const presentKey = o.concat([pasts[l]!.key, o.transpose(k, [0, 2, 1, 3])], 2, { outputs: [`present.${l}.key`] });
    const presentValue = o.concat([pasts[l]!.value, o.transpose(v, [0, 2, 1, 3])], 2, {
      outputs: [`present.${l}.value`],
    });
    g.output(presentKey, 'float32', ['batch_size', a.numKvHeads, 'total_sequence_length', D]);
    g.output(presentValue, 'float32', ['batch_size', a.numKvHeads, 'total_sequence_length', D]);

    // Query head h reads kv head floor(h / groups): group the query heads instead of copying the cache.
    const qGrouped = o.reshape(o.transpose(q, [0, 2, 1, 3]), [0, a.numKvHeads, groups, -1, D]); // [B,kv,g,S,D]
    const kT = o.unsqueeze(o.transpose(presentKey, [0, 1, 3, 2]), [2]); // [B,kv,1,D,T]
    const scores = o.div(o.matMul(qGrouped, kT), scale); // [B,kv,g,S,T]
    const probs = o.softmax(o.where(visible, scores, masked), -1);
    const context = o.matMul(probs, o.unsqueeze(presentValue, [2])); // [B,kv,g,S,D]
    const merged = o.reshape(o.transpose(o.reshape(context, [0, a.numHeads, -1, D]), [0, 2, 1, 3]), [
      0,
      0,
      a.numHeads * D,
    ]);
    x = o.add(x, nodes.linear(merged, `${p}.self_attn.o_proj`, lw.o, H, a.numHeads * D));

    const m = rmsNorm(x, `${p}.post_attention_layernorm`, lw.ffnNorm);
    const gate = nodes.linear(m, `${p}.mlp.gate_proj`, lw.gate, a.intermediateSize, H);
    const up = nodes.linear(m, `${p}.mlp.up_proj`, lw.up, a.intermediateSize, H);
    const act = o.mul(o.mul(gate, o.sigmoid(gate)), up);
    x = o.add(x, nodes.linear(act, `${p}.mlp.down_proj`, lw.down, H, a.intermediateSize));
  }
  const final = rmsNorm(x, 'model.norm', w.finalNorm);
  const logits = lmHead(nodes, final, w, a);
  g.output(logits, 'float32', ['batch_size', 'sequence_length', a.vocabSize]);
}

function buildContrib(
  g: GraphBuilder,
  nodes: WeightNodes,
  w: LlamaWeights,
  a: LlamaArchitecture,
  ropeLayout: RopeLayout,
  fusedRotary: boolean,
): void {
  const o = g.ops;
  const H = a.hiddenSize;
  const D = a.headDim;
  const qDim = a.numHeads * D;
  const kvDim = a.numKvHeads * D;
  const ms = { domain: MS_DOMAIN };

  const inputIds = g.input('input_ids', 'int64', ['batch_size', 'sequence_length']);
  const positionIds = g.input('position_ids', 'int64', ['batch_size', 'sequence_length']);
  const seqlensK = g.input('seqlens_k', 'int32', ['batch_size']);
  const totalLength = g.input('total_sequence_length', 'int32', []);
  const pasts: { key: Value; value: Value }[] = [];
  for (let l = 0; l < a.numLayers; l++) {
    const shape = ['batch_size', a.numKvHeads, 'past_sequence_length', D];
    pasts.push({
      key: g.input(`past_key_values.${l}.key`, 'float32', shape),
      value: g.input(`past_key_values.${l}.value`, 'float32', shape),
    });
  }

  const tables = ropeTables(a.maxPositions, D, a.ropeTheta, w.ropeFreqFactors, a.ropeScaling);
  const cosCache = g.initializer('rope.cos', tables.cos, [a.maxPositions, D / 2]);
  const sinCache = g.initializer('rope.sin', tables.sin, [a.maxPositions, D / 2]);
  const interleaved = ropeLayout === 'interleaved' ? 1 : 0;
  const eps = attr.float(a.rmsNormEps);
  const norm = (name: string, weight: Float32Array): Value => g.initializer(`${name}.weight`, weight, [H]);
  // x + skip, then RMSNorm of the sum: outputs (normalized, mean, inv_std_var, sum); mean and inv_std are unused.
  let skipNorms = 0;
  const skipNorm = (x: Value, skip: Value, gamma: Value): { normed: Value; sum: Value } => {
    const n = skipNorms++;
    const [normed, , , sum] = g.nodeMulti(
      'SkipSimplifiedLayerNormalization',
      [x, skip, gamma],
      4,
      { epsilon: eps },
      {
        ...ms,
        outputs: [`skip_norm_${n}.normed`, '', '', `skip_norm_${n}.residual`],
      },
    );
    return { normed: normed!, sum: sum! };
  };

  let residual = nodes.embed(inputIds, 'model.embed_tokens', w.tokenEmbedding, a.vocabSize, H);
  // ORT registers SimplifiedLayerNormalization (RMSNorm) in the default domain.
  let normed = g.node(
    'SimplifiedLayerNormalization',
    [residual, norm('model.layers.0.input_layernorm', w.layers[0]!.attnNorm)],
    {
      axis: -1,
      epsilon: eps,
    },
  );
  for (let l = 0; l < a.numLayers; l++) {
    const lw = w.layers[l]!;
    const p = `model.layers.${l}`;
    // One GEMM for q, k and v where their storage allows.
    const qkv = nodes.fusedLinear(normed, `${p}.self_attn.qkv_proj`, H, [
      { m: lw.q, outDim: qDim, ...(lw.qBias && { bias: lw.qBias }) },
      { m: lw.k, outDim: kvDim, ...(lw.kBias && { bias: lw.kBias }) },
      { m: lw.v, outDim: kvDim, ...(lw.vBias && { bias: lw.vBias }) },
    ]);
    let attnInputs: (Value | null)[];
    if (fusedRotary) {
      attnInputs = [qkv, null, null];
    } else {
      const [q, k, v] = g.nodeMulti(
        'Split',
        [qkv, g.int64s([qDim, kvDim, kvDim])],
        3,
        { axis: 2 },
        { outputs: [`${p}.q`, `${p}.k`, `new.${l}.value`] },
      ) as [Value, Value, Value];
      const rotate = (x: Value, outputs?: string[]): Value =>
        g.node(
          'RotaryEmbedding',
          [x, positionIds, cosCache, sinCache],
          { interleaved },
          { ...ms, ...(outputs && { outputs }) },
        );
      const rotatedK = rotate(k, [`new.${l}.key`]);
      // The step's own K (rotated) and V: a runner that keeps the cache itself appends these and fetches no present.
      g.output(rotatedK, 'float32', ['batch_size', 'sequence_length', kvDim]);
      g.output(v, 'float32', ['batch_size', 'sequence_length', kvDim]);
      attnInputs = [rotate(q), rotatedK, v];
    }
    const [attn, presentKey, presentValue] = g.nodeMulti(
      'GroupQueryAttention',
      [
        ...attnInputs,
        pasts[l]!.key,
        pasts[l]!.value,
        seqlensK,
        totalLength,
        ...(fusedRotary ? [cosCache, sinCache] : []),
      ],
      3,
      {
        num_heads: a.numHeads,
        kv_num_heads: a.numKvHeads,
        scale: attr.float(1 / Math.sqrt(D)),
        do_rotary: fusedRotary ? 1 : 0,
        rotary_interleaved: fusedRotary ? interleaved : undefined,
        // ORT's CPU kernel counts the query's own key in its window, as `slidingWindow` does.
        local_window_size: a.slidingWindow,
      },
      { ...ms, outputs: [`${p}.attn_out`, `present.${l}.key`, `present.${l}.value`] },
    ) as [Value, Value, Value];
    g.output(presentKey, 'float32', ['batch_size', a.numKvHeads, 'present_sequence_length', D]);
    g.output(presentValue, 'float32', ['batch_size', a.numKvHeads, 'present_sequence_length', D]);

    const attnOut = nodes.linear(attn, `${p}.self_attn.o_proj`, lw.o, H, qDim);
    const post = skipNorm(attnOut, residual, norm(`${p}.post_attention_layernorm`, lw.ffnNorm));
    residual = post.sum;
    const [gate, up] = g.nodeMulti(
      'Split',
      [
        nodes.fusedLinear(post.normed, `${p}.mlp.gate_up_proj`, H, [
          { m: lw.gate, outDim: a.intermediateSize },
          { m: lw.up, outDim: a.intermediateSize },
        ]),
        g.int64s([a.intermediateSize, a.intermediateSize]),
      ],
      2,
      {
        axis: 2,
      },
    ) as [Value, Value];
    const ffnOut = nodes.linear(
      o.mul(o.mul(gate, o.sigmoid(gate)), up),
      `${p}.mlp.down_proj`,
      lw.down,
      H,
      a.intermediateSize,
    );
    const nextNorm =
      l + 1 < a.numLayers
        ? norm(`model.layers.${l + 1}.input_layernorm`, w.layers[l + 1]!.attnNorm)
        : norm('model.norm', w.finalNorm);
    const next = skipNorm(ffnOut, residual, nextNorm);
    residual = next.sum;
    normed = next.normed;
  }
  const logits = lmHead(nodes, normed, w, a);
  g.output(logits, 'float32', ['batch_size', 'sequence_length', a.vocabSize]);
}

// The classifier: its own matrix, or the token embedding's (tied), shared rather than copied where the storage allows.
function lmHead(nodes: WeightNodes, x: Value, w: LlamaWeights, a: LlamaArchitecture): Value {
  return w.lmHead
    ? nodes.linear(x, 'lm_head', w.lmHead, a.vocabSize, a.hiddenSize, undefined, ['logits'])
    : nodes.tiedLinear(x, w.tokenEmbedding, a.vocabSize, a.hiddenSize, ['logits']);
}

// x [B,S,heads,D]; cos/sin [B,S,1,D/2,1]. Pairs (2i, 2i+1) rotate by angle i.
function ropeInterleaved(g: GraphBuilder, cos: Value, sin: Value, D: number): (x: Value) => Value {
  const o = g.ops;
  return (x) => {
    const pairs = o.reshape(x, [0, 0, 0, D / 2, 2]);
    const [even, odd] = g.nodeMulti('Split', [pairs, g.int64s([1, 1])], 2, { axis: 4 }) as [Value, Value];
    const outEven = o.sub(o.mul(even, cos), o.mul(odd, sin));
    const outOdd = o.add(o.mul(even, sin), o.mul(odd, cos));
    return o.reshape(o.concat([outEven, outOdd], 4), [0, 0, 0, D]);
  };
}

// x [B,S,heads,D]; cos/sin [B,S,1,D/2]. Pairs (i, i + D/2) rotate by angle i.
function ropeHalf(g: GraphBuilder, cos: Value, sin: Value, D: number): (x: Value) => Value {
  const o = g.ops;
  return (x) => {
    const [first, second] = g.nodeMulti('Split', [x, g.int64s([D / 2, D / 2])], 2, { axis: 3 }) as [Value, Value];
    const outFirst = o.sub(o.mul(first, cos), o.mul(second, sin));
    const outSecond = o.add(o.mul(second, cos), o.mul(first, sin));
    return o.concat([outFirst, outSecond], 3);
  };
}
