import { GraphBuilder, type Value } from '@nucleus/sdk/onnx';
import type { GeneratedModel, BuiltinModelGenerator } from './builtin-model.js';
import { SeededRandom } from '@nucleus/sdk';

const NAME = 'bert-tiny';

/** Architecture of the built-in encoder. */
export const BERT_TINY_CONFIG = {
  vocabSize: 1024,
  maxPositions: 128,
  hidden: 32,
  heads: 2,
  layers: 2,
  intermediate: 64,
  layerNormEpsilon: 1e-12,
} as const;

/**
 * A BERT-style encoder from standard ops (opset 17): word + position embeddings, LayerNorm, then per layer
 * multi-head self-attention (the attention mask added as a large negative bias on padded keys), residual +
 * LayerNorm, erf-GELU FFN, residual + LayerNorm. Random weights, seed 5.
 */
export function buildBertTiny(): GeneratedModel {
  const c = BERT_TINY_CONFIG;
  const headSize = c.hidden / c.heads;
  const rng = new SeededRandom(5);
  const g = new GraphBuilder('bert_tiny');
  const o = g.ops;

  const weight = (name: string, dims: number[], std = 0.1): Value =>
    g.initializer(
      name,
      rng.normals(
        dims.reduce((a, b) => a * b, 1),
        std,
      ),
      dims,
    );
  const ones = (name: string, n: number): Value => g.initializer(name, new Float32Array(n).fill(1), [n]);
  const zeros = (name: string, n: number): Value => g.initializer(name, new Float32Array(n), [n]);
  const linear = (x: Value, name: string, inDim: number, outDim: number): Value =>
    o.add(
      o.matMul(x, weight(`${name}.weight`, [inDim, outDim], Math.sqrt(1 / inDim))),
      weight(`${name}.bias`, [outDim], 0.02),
    );
  const layerNorm = (x: Value, name: string, options?: { outputs: string[] }): Value =>
    o.layerNormalization(
      x,
      ones(`${name}.weight`, c.hidden),
      zeros(`${name}.bias`, c.hidden),
      { axis: -1, epsilon: c.layerNormEpsilon },
      options,
    );

  const inputIds = g.input('input_ids', 'int64', ['batch', 'sequence']);
  const attentionMask = g.input('attention_mask', 'int64', ['batch', 'sequence']);

  // Embeddings: word[input_ids] + position[0..seq).
  const words = o.gather(weight('embeddings.word_embeddings.weight', [c.vocabSize, c.hidden]), inputIds, 0);
  const seqLen = o.squeeze(o.shape(inputIds, { start: 1, end: 2 }), [0]);
  const positionIds = o.range(g.scalar(0, 'int64'), seqLen, g.scalar(1, 'int64'));
  const positions = o.gather(
    weight('embeddings.position_embeddings.weight', [c.maxPositions, c.hidden]),
    positionIds,
    0,
  );
  let hidden = layerNorm(o.add(words, positions), 'embeddings.LayerNorm');

  // [batch, seq] mask of 1/0 → [batch, 1, 1, seq] bias of 0/−1e9, broadcast over heads and query positions.
  const keep = o.cast(attentionMask, 'float32');
  const maskBias = o.unsqueeze(o.mul(o.sub(1, keep), -1e9), [1, 2]);

  const splitHeads = (x: Value, perm: number[]): Value => o.transpose(o.reshape(x, [0, 0, c.heads, headSize]), perm);

  for (let l = 0; l < c.layers; l++) {
    const p = `encoder.layer.${l}`;
    const q = splitHeads(linear(hidden, `${p}.attention.query`, c.hidden, c.hidden), [0, 2, 1, 3]); // [B,H,S,D]
    const k = splitHeads(linear(hidden, `${p}.attention.key`, c.hidden, c.hidden), [0, 2, 3, 1]); // [B,H,D,S]
    const v = splitHeads(linear(hidden, `${p}.attention.value`, c.hidden, c.hidden), [0, 2, 1, 3]); // [B,H,S,D]
    const scores = o.add(o.mul(o.matMul(q, k), 1 / Math.sqrt(headSize)), maskBias);
    const context = o.matMul(o.softmax(scores, -1), v);
    const merged = o.reshape(o.transpose(context, [0, 2, 1, 3]), [0, 0, c.hidden]);
    const attended = linear(merged, `${p}.attention.output.dense`, c.hidden, c.hidden);
    hidden = layerNorm(o.add(attended, hidden), `${p}.attention.output.LayerNorm`);

    const ffn = linear(
      o.gelu(linear(hidden, `${p}.intermediate.dense`, c.hidden, c.intermediate)),
      `${p}.output.dense`,
      c.intermediate,
      c.hidden,
    );
    const last = l === c.layers - 1;
    hidden = layerNorm(
      o.add(ffn, hidden),
      `${p}.output.LayerNorm`,
      last ? { outputs: ['last_hidden_state'] } : undefined,
    );
  }
  g.output(hidden, 'float32', ['batch', 'sequence', c.hidden]);

  return {
    bytes: g.toModel({ producer: 'nucleus', docString: 'Built-in tiny BERT-style encoder fixture.' }).encode(),
    metadata: {
      name: NAME,
      version: 1,
      description: `Tiny BERT-style encoder (${c.layers} layers, hidden ${c.hidden}, ${c.heads} heads, vocab ${c.vocabSize}) with random weights, for embedding tests.`,
      task: 'embedding',
      inputs: [
        {
          name: 'input_ids',
          dtype: 'int64',
          shape: ['batch', 'sequence'],
          description: `Token ids, 0 to ${c.vocabSize - 1}; sequence ≤ ${c.maxPositions}.`,
        },
        {
          name: 'attention_mask',
          dtype: 'int64',
          shape: ['batch', 'sequence'],
          description: '1 for real tokens, 0 for padding.',
        },
      ],
      outputs: [
        {
          name: 'last_hidden_state',
          dtype: 'float32',
          shape: ['batch', 'sequence', c.hidden],
          description: 'Per-token hidden states of the last layer; padded positions carry no meaning.',
        },
      ],
      config: { ...c },
    },
  };
}

/** The tiny BERT encoder generator. */
export const bertTiny: BuiltinModelGenerator = { name: NAME, revision: 1, build: buildBertTiny };
