import { strict as assert } from 'node:assert';
import { NgramProposer, ngramMethod } from '@nucleus/plugin-spec-decode';
import { DEFAULT_SAMPLING, Sampler, type SamplingParams } from '@nucleus/core/internal/engine/llm/generation/sampler';

describe('NgramProposer (prompt lookup)', () => {
  it('proposes what followed the most recent earlier occurrence of the longest matching suffix', () => {
    const p = new NgramProposer({ promptLookupMin: 1, promptLookupMax: 3 });
    // Suffix [7, 8, 9] occurs at 0 and at 5; the most recent one (at 5) is followed by 4, 4.
    assert.deepEqual(p.propose([7, 8, 9, 1, 2, 7, 8, 9, 4, 4, 6, 7, 8, 9], 3), [4, 4, 6]);
    assert.deepEqual(p.propose([7, 8, 9, 1, 2, 7, 8, 9, 4, 4, 6, 7, 8, 9], 1), [4]);
    // Only a 1-token suffix matches: [5] at index 1 is followed by 6.
    assert.deepEqual(p.propose([1, 5, 6, 2, 3, 5], 4), [6, 2, 3, 5]);
    // A longer match beats a more recent shorter one: [2, 3] at 0 (then 9) against [3] at 4 (then 1).
    assert.deepEqual(p.propose([2, 3, 9, 0, 3, 1, 2, 3], 1), [9]);
  });

  it('proposes nothing without a match, for too short a sequence, or with no room', () => {
    const p = new NgramProposer({ promptLookupMin: 2, promptLookupMax: 4 });
    assert.deepEqual(p.propose([1, 2, 3, 4, 5, 6], 4), []);
    assert.deepEqual(p.propose([1, 5, 6, 2, 3, 5], 4), [], 'a 1-token suffix is below promptLookupMin');
    assert.deepEqual(p.propose([1], 4), []);
    assert.deepEqual(p.propose([], 4), []);
    assert.deepEqual(p.propose([1, 2, 1, 2], 0), []);
    // A repeating sequence: the draft continues the cycle, up to the end of what is known.
    assert.deepEqual(p.propose([1, 2, 1, 2], 4), [1, 2]);
  });

  it('refuses settings that cannot work', () => {
    assert.throws(() => new NgramProposer({ promptLookupMin: 0 }), /promptLookupMin/);
    assert.throws(() => new NgramProposer({ promptLookupMin: 3, promptLookupMax: 2 }), /promptLookupMax/);
    assert.throws(
      () => ngramMethod({ promptLookupMin: 5, promptLookupMax: 4 }),
      /promptLookupMax \(4\) is below promptLookupMin \(5\)/,
    );
  });

  it('describes the ngram method for the draftProposer extension point', () => {
    const m = ngramMethod({ numSpeculativeTokens: 6 });
    assert.equal(m.name, 'ngram');
    assert.equal(m.numSpeculativeTokens, 6);
    assert.equal(m.maxBatch, 4);
    assert.deepEqual(m.options, { promptLookupMin: 2, promptLookupMax: 4 });
    assert.match(m.module, /^file:.*ngram-proposer\.js$/);
  });
});

describe('Sampler.verify (rejection sampling of a drafted token)', () => {
  const LOGITS = Float32Array.from([2, 1.5, 1, 0.2, -1, -3]);

  // Frequencies of the token verify() appends for a fixed draft, against those of sample(), over many seeds.
  function frequencies(params: SamplingParams, draw: (s: Sampler) => number, n = 20000): number[] {
    const counts = new Array<number>(LOGITS.length).fill(0);
    const s = new Sampler(params, 12345);
    for (let i = 0; i < n; i++) counts[draw(s)]!++;
    return counts.map((c) => c / n);
  }

  for (const [what, params] of [
    ['temperature 1', { ...DEFAULT_SAMPLING }],
    ['temperature 0.7, top-k 3', { ...DEFAULT_SAMPLING, temperature: 0.7, topK: 3 }],
    ['top-p 0.8', { ...DEFAULT_SAMPLING, topP: 0.8 }],
  ] as const) {
    it(`gives the distribution sample() gives, whatever the draft (${what})`, () => {
      const expected = frequencies(params, (s) => s.sample(LOGITS));
      for (const draft of [0, 2, 4]) {
        const got = frequencies(params, (s) => s.verify(LOGITS, draft));
        got.forEach((f, id) =>
          assert.ok(
            Math.abs(f - expected[id]!) < 0.015,
            `draft ${draft}: token ${id} at ${f.toFixed(3)}, sample() gives ${expected[id]!.toFixed(3)}`,
          ),
        );
      }
    });
  }

  it('accepts a likely draft more often than an unlikely one, and never one top-k excludes', () => {
    const params = { ...DEFAULT_SAMPLING, topK: 2 };
    const accepted = (draft: number) => frequencies(params, (s) => (s.verify(LOGITS, draft) === draft ? 1 : 0))[1]!;
    assert.ok(accepted(0) > 0.55 && accepted(0) < 0.7, `p(0) among the top 2 is about 0.62, got ${accepted(0)}`);
    assert.ok(accepted(1) > 0.3 && accepted(1) < 0.45);
    assert.equal(accepted(3), 0);
  });

  it('under greedy settings, gives the most likely token, draft or not', () => {
    const s = new Sampler({ ...DEFAULT_SAMPLING, temperature: 0 }, 1);
    assert.equal(s.verify(LOGITS, 0), 0);
    assert.equal(s.verify(LOGITS, 3), 0);
  });
});
