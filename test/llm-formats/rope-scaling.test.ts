import assert from 'node:assert/strict';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { SeededRandom } from '@nucleus/sdk';
import { createTokenizer, dequantizeMatrix, ggmlRopeTables, sliceRows, yarnCorrectionDims } from '@nucleus/sdk/llm';
import { inspectGguf, readGguf, readGgufWeights, readTensorF32, toBlockQuantized } from '@nucleus/plugin-format-gguf';
import { loadGguf } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { chatOnce, followServer, spawnServe, stopServer } from '../helpers/server-child.js';
import { DecoderRunner, maxAbsDiff } from './decoder-runner.js';
import { q8Bytes, m } from './gguf-writer.js';
import { ORACLE_DIR, requireOracle } from './llm-module.js';
import { compareSteps, firstDifference, stepsBeforeGapBelow } from './oracle-refs.js';
import { ropeCases, ropeRefs, type RopeCase } from './rope-refs.js';
import { PHI3_ORIGINAL_CONTEXT, writeRopeFixture, type RopeFixture } from './rope-fixtures.js';

// YaRN (Llama, Qwen2) and Phi-3 (fused q/k/v and gate/up, LongRoPE, attention factor, sliding window) against
// llama.cpp: the files `rope-fixtures.ts` writes, the references `make-rope-refs.ts` took from node-llama-cpp, held
// to the oracle README's float32 tolerance (0.05 on logit differences, argmax and greedy ids where llama.cpp's gap
// exceeds it).

const TOLERANCE = 0.05;
const PHI3_VOCAB = join(ORACLE_DIR, 'tokenizer-tests', 'ggml-vocab-phi-3.gguf');

describe('RoPE scaling against llama.cpp: YaRN on Llama and Qwen2, Phi-3 with LongRoPE', function () {
  this.timeout(180_000);
  const dir = tempDir('rope-scaling');
  const cacheDir = join(dir, 'cache');
  const written = new Map<string, string>();
  after(() => rmSync(dir, { recursive: true, force: true }));

  const fixture = (name: RopeFixture, slidingWindow?: number): string => {
    const key = `${name}-${slidingWindow ?? ''}`;
    let path = written.get(key);
    if (!path) {
      path = join(dir, `${key}.gguf`);
      // The oracle's Phi-3 vocabulary where it is here (the references need it), else the small test one.
      writeRopeFixture(name, path, {
        ...(existsSync(PHI3_VOCAB) && { phi3Vocabulary: PHI3_VOCAB }),
        ...(slidingWindow && { slidingWindow }),
      });
      written.set(key, path);
    }
    return path;
  };
  const needsVocab = (ctx: Mocha.Context, c: RopeFixture): void => {
    if (c === 'phi3-longrope') requireOracle(ctx);
  };

  /** Teacher-forced logits over prompt + generated ids, in the given graph style. */
  const forced = async (
    path: string,
    c: Pick<RopeCase, 'contextSize'>,
    sequence: number[],
    style: 'generic' | 'contrib',
  ): Promise<{ rowAt: (s: number) => Float32Array; runner: DecoderRunner }> => {
    const llm = await loadGguf(path, { cacheDir, graphStyle: style, maxContext: c.contextSize });
    const runner = await DecoderRunner.open(llm.onnxPath, llm.config);
    const positions = [sequence.map((_, i) => i)];
    const r =
      style === 'generic'
        ? await runner.stepGeneric([sequence], [sequence.map(() => 1)], positions, runner.emptyCache(1))
        : await runner.stepContrib([sequence], positions, [sequence.length], runner.emptyCache(1));
    return { rowAt: (s) => runner.row(r, 0, s), runner };
  };

  for (const c of ropeCases()) {
    for (const style of ['generic', 'contrib'] as const) {
      it(`${c.name} (${style}): teacher-forced logit differences within ${TOLERANCE} of llama.cpp's, argmax and greedy ids equal where its gap exceeds that`, async function () {
        needsVocab(this, c.fixture);
        const ref = ropeRefs().cases.find((r) => r.name === c.name)!;
        assert.deepEqual(ref.prompt_ids, c.promptIds, 'the stored reference is for this prompt');
        const path = fixture(c.fixture);
        const sequence = [...ref.prompt_ids, ...ref.generated_ids];
        const { rowAt, runner } = await forced(path, c, sequence, style);
        try {
          const cmp = compareSteps(ref.steps, (k) => rowAt(ref.prompt_ids.length - 1 + k), TOLERANCE);
          console.log(`      ${c.name} ${style}: max |Δ(logit − top1)| vs llama.cpp ${cmp.maxDiff.toFixed(4)}`);
          assert.ok(
            cmp.maxDiff < TOLERANCE,
            `max |Δ| ${cmp.maxDiff} at step ${cmp.worst.step} token ${cmp.worst.token} (${cmp.worst.got} vs ${cmp.worst.want})`,
          );
          assert.deepEqual(cmp.argmaxMisses, []);
          if (style === 'generic') {
            const comparable = stepsBeforeGapBelow(ref.steps, TOLERANCE);
            const ids = (await runner.greedy(ref.prompt_ids, ref.prompt_ids.length - 1 + comparable)).slice(
              ref.prompt_ids.length - 1,
            );
            assert.equal(
              firstDifference(ids, ref.generated_ids.slice(0, comparable)),
              -1,
              `greedy ${ids} vs ${ref.generated_ids}`,
            );
          }
        } finally {
          await runner.close();
        }
      });
    }
  }

  it('the Phi-3 graph takes LongRoPE long factors past the original context and short ones within it', async () => {
    const path = fixture('phi3-longrope');
    const sequence = ropeCases()[0]!.promptIds.slice(0, 40);
    const long = await forced(path, { contextSize: 512 }, sequence, 'generic');
    const short = await forced(path, { contextSize: PHI3_ORIGINAL_CONTEXT }, sequence, 'generic');
    try {
      // Position 0 turns nothing; later positions differ by the factors.
      assert.ok(maxAbsDiff(long.rowAt(0), short.rowAt(0)) < 1e-4);
      assert.ok(maxAbsDiff(long.rowAt(39), short.rowAt(39)) > 1e-2);
    } finally {
      await long.runner.close();
      await short.runner.close();
    }
  });

  it('a Phi-3 sliding window: the generic mask and GroupQueryAttention agree, and keys past the window stop counting', async () => {
    const windowed = fixture('phi3-longrope', 8);
    const sequence = ropeCases()[0]!.promptIds.slice(0, 24);
    const generic = await forced(windowed, { contextSize: 512 }, sequence, 'generic');
    const contrib = await forced(windowed, { contextSize: 512 }, sequence, 'contrib');
    const wide = await forced(fixture('phi3-longrope'), { contextSize: 512 }, sequence, 'generic');
    try {
      for (let s = 0; s < sequence.length; s++) {
        assert.ok(maxAbsDiff(generic.rowAt(s), contrib.rowAt(s)) < 1e-3, `position ${s}: generic vs contrib`);
        const d = maxAbsDiff(generic.rowAt(s), wide.rowAt(s));
        // Up to position 7 a query sees at most 8 keys, all inside the window.
        if (s < 8) assert.ok(d < 1e-4, `position ${s} is within the window (Δ ${d})`);
        else assert.ok(d > 1e-3, `position ${s} lost keys to the window (Δ ${d})`);
      }
    } finally {
      for (const r of [generic, contrib, wide]) await r.runner.close();
    }
  });

  it("ggml's YaRN tables equal the formula in float64 (ramp between the correction dims, mscale folded in)", () => {
    const headDim = 16;
    const s = { freqScale: 0.25, extFactor: 1, attnFactor: 1, betaFast: 32, betaSlow: 1, originalContext: 128 };
    const [low, high] = yarnCorrectionDims(headDim, 128, 10000, 32, 1);
    // corr_dim(β) = d · ln(n_orig / (2πβ)) / (2 ln base), floored / ceiled.
    const dim = (beta: number): number => (headDim * Math.log(128 / (2 * Math.PI * beta))) / (2 * Math.log(10000));
    assert.deepEqual([low, high], [Math.max(0, Math.floor(dim(32))), Math.min(headDim - 1, Math.ceil(dim(1)))]);
    const { cos, sin } = ggmlRopeTables(300, headDim, 10000, s);
    const mscale = 1 + 0.1 * Math.log(4);
    for (const p of [1, 17, 127, 299]) {
      for (let i = 0; i < headDim / 2; i++) {
        const extrap = p * 10000 ** ((-2 * i) / headDim);
        const ramp = 1 - Math.min(1, Math.max(0, (i - low) / Math.max(0.001, high - low)));
        const angle = extrap * 0.25 * (1 - ramp) + extrap * ramp;
        const at = p * (headDim / 2) + i;
        assert.ok(Math.abs(cos[at]! - Math.cos(angle) * mscale) < 1e-4, `cos p=${p} i=${i}`);
        assert.ok(Math.abs(sin[at]! - Math.sin(angle) * mscale) < 1e-4, `sin p=${p} i=${i}`);
      }
    }
  });

  it('rows sliced off a block-quantized matrix stay quantized and dequantize to the same rows', () => {
    const rows = 12;
    const cols = 64;
    const values = new SeededRandom(5).normals(rows * cols, 1);
    const q = toBlockQuantized('fused', 8, q8Bytes(values).bytes, rows, cols);
    const all = dequantizeMatrix(q);
    const part = sliceRows(q, cols, 4, 5);
    assert.ok(!(part instanceof Float32Array));
    assert.equal(part.rows, 5);
    assert.deepEqual(dequantizeMatrix(part), all.slice(4 * cols, 9 * cols));
  });

  it('the Phi-3 reader splits attn_qkv into q, k, v and ffn_up into gate and up, as llama.cpp views them', () => {
    const model = inspectGguf(fixture('phi3-longrope'));
    const w = readGgufWeights(model);
    const file = readGguf(fixture('phi3-longrope'));
    const tensor = (name: string): Float32Array => readTensorF32(file, file.tensors.find((t) => t.name === name)!);
    const qkv = tensor('blk.1.attn_qkv.weight');
    const up = tensor('blk.1.ffn_up.weight');
    const H = model.arch.hiddenSize;
    const l = w.layers[1]!;
    assert.deepEqual(l.q, qkv.slice(0, 64 * H));
    assert.deepEqual(l.k, qkv.slice(64 * H, 96 * H));
    assert.deepEqual(l.v, qkv.slice(96 * H));
    assert.deepEqual(l.gate, up.slice(0, 128 * H));
    assert.deepEqual(l.up, up.slice(128 * H));
    assert.equal(model.ropeLayout, 'half');
    assert.equal(model.arch.slidingWindow, 384);
    assert.ok(
      model.arch.ropeScaling && model.arch.ropeScaling.extFactor === 0 && model.arch.ropeScaling.attnFactor > 1,
    );
  });

  it('refuses what it cannot compute: one LongRoPE table without the other, DeepSeek YaRN, partial RoPE', () => {
    const refusal = (name: RopeFixture, options: Parameters<typeof writeRopeFixture>[2]): string => {
      const path = join(dir, 'odd-rope.gguf');
      writeRopeFixture(name, path, options);
      try {
        inspectGguf(path);
      } catch (err) {
        assert.equal((err as { status?: number }).status, 400);
        return (err as Error).message;
      }
      assert.fail('the file was accepted');
    };
    assert.match(
      refusal('phi3-longrope', { omit: ['rope_factors_short.weight'] }),
      /LongRoPE needs both rope_factors_long\.weight and rope_factors_short\.weight/,
    );
    assert.match(
      refusal('llama-yarn', { metadata: { 'llama.rope.scaling.yarn_log_multiplier': m.f32(0.1) } }),
      /llama\.rope\.scaling\.yarn_log_multiplier 0\.1/,
    );
    assert.match(
      refusal('qwen2-yarn', { metadata: { 'qwen2.rope.dimension_count': m.u32(8) } }),
      /partial RoPE \(rope\.dimension_count 8 of head dim 16\)/,
    );
  });

  it('`nucleus serve --model` serves the Phi-3 file, chatting through its own template', async function () {
    requireOracle(this);
    const path = fixture('phi3-longrope');
    const child = spawnServe(`phi=${path}`, { NUCLEUS_CACHE_DIR: join(dir, 'serve-cache') });
    try {
      const url = await followServer(child, 120_000).url;
      const { status, body } = await chatOnce(url, 'phi', 'Hi', 6);
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(body.usage?.completion_tokens, 6);
      assert.equal(typeof body.choices?.[0]?.message.content, 'string');
      // The file's Phi-3 template renders BOS, <|user|>, the message, <|end|> and <|assistant|>: what the prompt counts.
      const tokenizer = createTokenizer(inspectGguf(path).tokenizer);
      const rendered = tokenizer.encode('<s><|user|>\nHi<|end|>\n<|assistant|>\n', { parseSpecial: true });
      assert.ok(rendered.includes(32010) && rendered.includes(32007) && rendered.includes(32001));
      assert.equal(body.usage?.prompt_tokens, rendered.length);
    } finally {
      await stopServer(child);
    }
  });
});
