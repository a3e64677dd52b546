import assert from 'node:assert/strict';
import { tinyLlamaWeights, TINY_LLAMA_ARCH } from '@nucleus/plugin-builtin-models';
import {
  buildLlamaGraph,
  builtDecoderConfig,
  dequantizeMatrix,
  quantizeMatrix,
  type LlamaWeights,
  type WeightMatrix,
} from '../helpers/llm.js';
import { DecoderRunner, maxAbsDiff } from '../llm-formats/decoder-runner.js';

/** Every matrix of `w` passed through `map` (norms and biases stay float32). */
function mapMatrices(
  w: LlamaWeights,
  map: (m: Float32Array, rows: number, cols: number) => WeightMatrix,
): LlamaWeights {
  const a = TINY_LLAMA_ARCH;
  const H = a.hiddenSize;
  const q = a.numHeads * a.headDim;
  const kv = a.numKvHeads * a.headDim;
  const f = (m: WeightMatrix, rows: number, cols: number): WeightMatrix => map(m as Float32Array, rows, cols);
  return {
    ...w,
    tokenEmbedding: f(w.tokenEmbedding, a.vocabSize, H),
    lmHead: f(w.lmHead!, a.vocabSize, H),
    layers: w.layers.map((l) => ({
      ...l,
      q: f(l.q, q, H),
      k: f(l.k, kv, H),
      v: f(l.v, kv, H),
      o: f(l.o, H, q),
      gate: f(l.gate, a.intermediateSize, H),
      up: f(l.up, a.intermediateSize, H),
      down: f(l.down, H, a.intermediateSize),
    })),
  };
}

describe('quantizeMatrix: float weights into 8- and 4-bit blocks of 32 (the load-time quantize of safetensors)', () => {
  it('every value comes back within half a step (4 bits: a step) of its block, the largest exactly', () => {
    const rows = 8;
    const cols = 64;
    const values = Float32Array.from({ length: rows * cols }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 13)));
    for (const bits of [8, 4] as const) {
      const q = quantizeMatrix(values, rows, cols, bits);
      assert.deepEqual(
        [q.rows, q.cols, q.bits, q.blockSize, q.data.length],
        [rows, cols, bits, 32, (rows * cols * bits) / 8],
      );
      const back = dequantizeMatrix(q);
      for (let b = 0; b < q.scales.length; b++) {
        const block = values.subarray(b * 32, b * 32 + 32);
        const restored = back.subarray(b * 32, b * 32 + 32);
        const step = Math.abs(q.scales[b]!);
        const largest = block.reduce((m, v, i) => (Math.abs(v) > Math.abs(block[m]!) ? i : m), 0);
        assert.ok(
          Math.abs(restored[largest]! - block[largest]!) <= 1e-6 * Math.abs(block[largest]!),
          `${bits}-bit block ${b}: its extreme`,
        );
        // Q4_0 maps the extreme to −8, so the other side reaches only +7: a value there may be a whole step off.
        const bound = bits === 8 ? step / 2 : step;
        assert.ok(maxAbsDiff(restored, block) <= bound + 1e-6, `${bits}-bit block ${b}`);
      }
    }
    assert.throws(() => quantizeMatrix(new Float32Array(40), 2, 20, 8), /rows of 20 values do not fill blocks of 32/);
  });

  it('a graph of quantized weights computes what a float32 graph of their dequantized values computes', async () => {
    const a = TINY_LLAMA_ARCH;
    const config = builtDecoderConfig(a, 'generic', { eosTokenIds: [] });
    const ids = [1, 5, 9, 200, 17, 42, 3, 77];
    const w = tinyLlamaWeights();
    for (const bits of [8, 4] as const) {
      const quantized = mapMatrices(w, (m, r, c) => quantizeMatrix(m, r, c, bits));
      const dequantized = mapMatrices(quantized, (m) => (m instanceof Float32Array ? m : dequantizeMatrix(m)));
      const logits: Float32Array[] = [];
      for (const weights of [quantized, dequantized]) {
        const graph = buildLlamaGraph(weights, a, { ropeLayout: 'half', style: 'generic' });
        const runner = await DecoderRunner.open(graph.encode(), config);
        try {
          const r = await runner.stepGeneric([ids], [ids.map(() => 1)], [ids.map((_, i) => i)], runner.emptyCache(1));
          logits.push(Float32Array.from(r.logits));
        } finally {
          await runner.close();
        }
      }
      const diff = maxAbsDiff(logits[0]!, logits[1]!);
      assert.ok(diff < 1e-4, `${bits}-bit: max |Δ logit| ${diff}`);
    }
  });
});
