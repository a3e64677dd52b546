import { strict as assert } from 'node:assert';
import { float16Bits } from '@nucleus/sdk/onnx';
import { DEFAULT_SAMPLING, Sampler, type SamplingParams } from '@nucleus/core/internal/engine/llm/generation/sampler';

const logitsOf = (probs: number[]) => Float32Array.from(probs, (p) => Math.log(p));

function draws(params: Partial<SamplingParams>, logits: Float32Array, n: number, seed = 1): number[] {
  const sampler = new Sampler({ ...DEFAULT_SAMPLING, ...params }, seed);
  return Array.from({ length: n }, () => sampler.sample(logits));
}

function frequencies(ids: number[], size: number): number[] {
  const f = new Array<number>(size).fill(0);
  for (const id of ids) f[id]!++;
  return f.map((c) => c / ids.length);
}

describe('Sampler', () => {
  const probs = [0.05, 0.5, 0.15, 0.3];
  const logits = logitsOf(probs);

  it('picks the most likely token at temperature 0 and with top_k 1, whatever the seed', () => {
    for (const seed of [1, 2, 3]) {
      assert.deepEqual(new Set(draws({ temperature: 0 }, logits, 50, seed)), new Set([1]));
      assert.deepEqual(new Set(draws({ topK: 1 }, logits, 50, seed)), new Set([1]));
    }
    // A tie goes to the lowest id.
    assert.equal(new Sampler({ ...DEFAULT_SAMPLING, temperature: 0 }, 1).sample(Float32Array.from([0, 3, 3, 1])), 1);
  });

  it('samples in proportion to the softmax at temperature 1', () => {
    const f = frequencies(draws({}, logits, 8000), 4);
    probs.forEach((p, i) => assert.ok(Math.abs(f[i]! - p) < 0.03, `token ${i}: ${f[i]} vs ${p}`));
  });

  it('sharpens with a low temperature and flattens with a high one', () => {
    const cold = frequencies(draws({ temperature: 0.2 }, logits, 2000), 4);
    assert.ok(cold[1]! > 0.9, `cold: ${cold}`);
    const hot = frequencies(draws({ temperature: 5 }, logits, 4000), 4);
    assert.ok(hot[0]! > 0.15, `hot: the unlikely token gains (${hot[0]})`);
    assert.ok(hot[1]! < 0.35, `hot: the likely token loses (${hot[1]})`);
  });

  it('keeps only the top_k most likely tokens, each still drawn', () => {
    const f = frequencies(draws({ topK: 2 }, logits, 4000), 4);
    assert.equal(f[0], 0);
    assert.equal(f[2], 0);
    assert.ok(Math.abs(f[1]! - 0.5 / 0.8) < 0.03 && Math.abs(f[3]! - 0.3 / 0.8) < 0.03, `renormalised: ${f}`);
  });

  it('keeps the smallest set whose probability reaches top_p', () => {
    assert.deepEqual(new Set(draws({ topP: 0.8 }, logits, 2000)), new Set([1, 3]));
    assert.deepEqual(new Set(draws({ topP: 0.81 }, logits, 2000)), new Set([1, 2, 3]));
    assert.deepEqual(
      new Set(draws({ topP: 0.4 }, logits, 500)),
      new Set([1]),
      'the top token alone when it already reaches top_p',
    );
  });

  it('combines top_k and top_p on a large vocabulary', () => {
    const big = new Float32Array(32000).map((_, i) => -i / 1000);
    const seen = new Set(draws({ topK: 40, topP: 0.99 }, big, 1000));
    assert.ok(Math.max(...seen) < 40, 'nothing beyond the 40 most likely');
    assert.ok(seen.size > 30, `and most of those 40 occur (${seen.size})`);
  });

  it('repeats itself for the same seed and not for another', () => {
    const a = draws({ temperature: 1.2, topP: 0.9 }, logits, 100, 42);
    const b = draws({ temperature: 1.2, topP: 0.9 }, logits, 100, 42);
    const c = draws({ temperature: 1.2, topP: 0.9 }, logits, 100, 43);
    assert.deepEqual(a, b);
    assert.notDeepEqual(a, c);
  });

  it('penalises tokens of the prompt and the output with repetition_penalty (HF: divide positive, multiply negative)', () => {
    const l = Float32Array.from([2.0, 1.9, -1, -1.1]);
    const plain = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0 }, 1);
    assert.equal(plain.sample(l), 0);
    const penalised = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0, repetitionPenalty: 1.2 }, 1, [0]);
    assert.equal(penalised.sample(l), 1, '2.0 / 1.2 falls below 1.9');
    const negative = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0, repetitionPenalty: 1.2 }, 1);
    negative.accept(0);
    negative.accept(1);
    assert.equal(
      negative.sample(Float32Array.from([-1, -1.05, -1.1, -5])),
      2,
      'negative logits of seen tokens get more negative',
    );
  });

  it('applies frequency and presence penalties per occurrence in the output', () => {
    const s = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0, frequencyPenalty: 0.3 }, 1);
    const l = Float32Array.from([1.0, 0.5]);
    assert.equal(s.sample(l), 0);
    s.accept(0);
    assert.equal(s.sample(l), 0, '1.0 - 0.3 is still ahead');
    s.accept(0);
    assert.equal(s.sample(l), 1, '1.0 - 0.6 falls behind 0.5');
    const p = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0, presencePenalty: 0.6 }, 1);
    p.accept(0);
    assert.equal(p.sample(l), 1);
  });

  it('reads float16 logits', () => {
    const half = { float16: Uint16Array.from([0.5, 3, 1], (v) => float16Bits(v)) };
    assert.equal(new Sampler({ ...DEFAULT_SAMPLING, temperature: 0 }, 1).sample(half), 1);
  });
});
