import { strict as assert } from 'node:assert';
import { SeededRandom } from '@nucleus/sdk';
import { DEFAULT_SAMPLING, Sampler, type SamplingParams } from '@nucleus/core/internal/engine/llm/generation/sampler';

// Target logits and a draft distribution that disagrees with them (it favours tokens the target finds unlikely).
const TARGET = new Float32Array([2.0, 1.5, 0.2, -0.5, 1.0, -1.0, 0.7, 0.1]);
const DRAFT_LOGITS = [0.1, 0.3, 1.8, 1.2, -0.4, 0.9, 0.0, 1.5];
const DRAWS = 100_000;
/** χ² with 7 degrees of freedom beyond which p < 1e-9 (Wilson–Hilferty): a bound a right sampler never crosses by chance. */
const CHI2_BOUND = 59;

function softmax(logits: readonly number[] | Float32Array, t = 1): Float32Array {
  const max = Math.max(...logits);
  const e = Array.from(logits, (v) => Math.exp((v - max) / t));
  const total = e.reduce((a, b) => a + b, 0);
  return new Float32Array(e.map((v) => v / total));
}

// The distribution the settings give the target's logits: temperature, then top-k and top-p (ties do not occur here).
function targetDistribution(params: SamplingParams): Float32Array {
  const p = softmax(TARGET, params.temperature);
  const order = [...p.keys()].sort((a, b) => p[b]! - p[a]!);
  const keep = new Set<number>();
  let mass = 0;
  for (const id of order) {
    if (params.topK > 0 && keep.size >= params.topK) break;
    if (params.topP < 1 && mass >= params.topP) break;
    keep.add(id);
    mass += p[id]!;
  }
  const out = new Float32Array(p.length);
  for (const id of keep) out[id] = p[id]! / mass;
  return out;
}

function chiSquare(counts: readonly number[], probabilities: Float32Array, n: number): number {
  let chi = 0;
  counts.forEach((c, i) => {
    const expected = probabilities[i]! * n;
    if (expected > 0) chi += (c - expected) ** 2 / expected;
    else assert.equal(c, 0, `token ${i} has no probability but was drawn`);
  });
  return chi;
}

describe('rejection sampling with a draft distribution (Leviathan / Chen)', () => {
  for (const [label, params] of [
    ['temperature 1', { ...DEFAULT_SAMPLING }],
    ['temperature 0.8, top-k 5, top-p 0.9', { ...DEFAULT_SAMPLING, temperature: 0.8, topK: 5, topP: 0.9 }],
  ] as const)
    it(`keeps the target's distribution (${label}): token histograms pass a χ² test at p < 1e-9`, () => {
      const sampler = new Sampler(params, 1234);
      const q = softmax(DRAFT_LOGITS, params.temperature);
      const draftRng = new SeededRandom(99);
      const counts = new Array<number>(TARGET.length).fill(0);
      const drafted = new Array<number>(TARGET.length).fill(0);
      let accepted = 0;
      for (let i = 0; i < DRAWS; i++) {
        // The draft is drawn from q, as the draft model draws it.
        let u = draftRng.next();
        let draft = q.length - 1;
        for (let t = 0; t < q.length; t++) {
          u -= q[t]!;
          if (u < 0) {
            draft = t;
            break;
          }
        }
        drafted[draft]!++;
        const token = sampler.verify(TARGET, draft, q);
        if (token === draft) accepted++;
        counts[token]!++;
      }
      const p = targetDistribution(params);
      const chi = chiSquare(counts, p, DRAWS);
      assert.ok(chi < CHI2_BOUND, `χ² ${chi.toFixed(1)} against the target's distribution`);
      // The test has power: the drafts themselves (q) are far from p, and so is accepting every draft.
      const chiDraft = chiSquare(
        drafted.map((c, i) => (p[i]! > 0 ? c : 0)),
        p,
        drafted.reduce((n, c, i) => n + (p[i]! > 0 ? c : 0), 0),
      );
      assert.ok(chiDraft > 100 * CHI2_BOUND, `χ² of the drafts ${chiDraft.toFixed(0)}`);
      // Acceptance is Σ min(p, q), the overlap of the two distributions.
      const overlap = Array.from(p, (pi, i) => Math.min(pi, q[i]!)).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(accepted / DRAWS - overlap) < 0.01, `acceptance ${accepted / DRAWS} against ${overlap}`);
    });

  it('accepts a draft whose distribution equals the target’s every time', () => {
    const sampler = new Sampler({ ...DEFAULT_SAMPLING }, 7);
    const p = softmax(TARGET);
    for (let draft = 0; draft < TARGET.length; draft++)
      for (let i = 0; i < 200; i++) assert.equal(sampler.verify(TARGET, draft, p), draft);
  });

  it('under greedy settings keeps only the most likely token, whatever q says', () => {
    const sampler = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0 }, 7);
    const q = softmax(DRAFT_LOGITS);
    for (let draft = 0; draft < TARGET.length; draft++) assert.equal(sampler.verify(TARGET, draft, q), 0);
  });
});
