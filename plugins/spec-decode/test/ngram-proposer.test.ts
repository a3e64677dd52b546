import assert from 'node:assert/strict';
import {
  createNgramProposer,
  DEFAULT_SPEC_DECODE_SETTINGS,
  NgramProposer,
  ngramMethod,
} from '@nucleus/plugin-spec-decode';

describe('spec-decode: n-gram proposer', () => {
  it('drafts the tokens that followed the last n tokens earlier in the sequence', () => {
    const p = new NgramProposer({ promptLookupMin: 2, promptLookupMax: 3 });
    // ... 5 6 7 8 9 ... 5 6 → the draft is 7 8 9 ...
    assert.deepEqual(p.propose([1, 5, 6, 7, 8, 9, 2, 5, 6], 3), [7, 8, 9]);
    // The draft stops at max, and at the end of the sequence.
    assert.deepEqual(p.propose([1, 5, 6, 7, 8, 9, 2, 5, 6], 2), [7, 8]);
    assert.deepEqual(p.propose([5, 6, 7, 5, 6], 10), [7, 5, 6]);
  });

  it('prefers the longest matching suffix, and among its matches the most recent', () => {
    const p = new NgramProposer({ promptLookupMin: 1, promptLookupMax: 3 });
    // Suffix [2 3] occurs twice: after 9 2 3 comes 40 (n = 3 match), after 1 2 3 comes 10.
    assert.deepEqual(p.propose([9, 2, 3, 40, 1, 2, 3, 10, 9, 2, 3], 1), [40]);
    // Only n = 1 matches: token 3 occurs at positions 1 and 4; the later one is followed by 8.
    assert.deepEqual(p.propose([0, 3, 7, 1, 3, 8, 2, 3], 1), [8]);
  });

  it('gives no draft when nothing matches, the suffix is shorter than the minimum, or max is 0', () => {
    const p = new NgramProposer({ promptLookupMin: 2, promptLookupMax: 4 });
    assert.deepEqual(p.propose([1, 2, 3, 4, 5], 4), []);
    // Only one token repeats: a 1-token match is below the minimum.
    assert.deepEqual(p.propose([7, 1, 2, 7], 4), []);
    assert.deepEqual(p.propose([1, 2, 1, 2], 0), []);
    assert.deepEqual(p.propose([], 3), []);
    assert.deepEqual(p.propose([4], 3), []);
  });

  it('refuses settings that are not whole numbers or whose maximum is below the minimum', () => {
    assert.throws(
      () => new NgramProposer({ promptLookupMin: 0 }),
      /promptLookupMin must be a whole number of at least 1, got 0/,
    );
    assert.throws(() => new NgramProposer({ promptLookupMin: 1.5 }), /promptLookupMin/);
    assert.throws(
      () => new NgramProposer({ promptLookupMin: 3, promptLookupMax: 2 }),
      /promptLookupMax must be a whole number of at least promptLookupMin \(3\), got 2/,
    );
  });

  it('the module’s factory builds a proposer from the options the worker passes', () => {
    const p = createNgramProposer({ promptLookupMin: 1, promptLookupMax: 1 });
    assert.ok(p instanceof NgramProposer);
    assert.deepEqual(p.propose([3, 4, 3], 1), [4]);
  });

  it('the ngram method carries its settings and names the proposer module', async () => {
    const method = ngramMethod({ numSpeculativeTokens: 6, promptLookupMin: 1 });
    assert.equal(method.name, 'ngram');
    assert.equal(method.numSpeculativeTokens, 6);
    assert.equal(method.maxBatch, DEFAULT_SPEC_DECODE_SETTINGS.maxBatch);
    assert.deepEqual(method.options, { promptLookupMin: 1, promptLookupMax: 4 });
    // The module the generation worker imports is the proposer itself.
    const mod = (await import(method.module)) as { default: typeof createNgramProposer };
    assert.deepEqual(mod.default(method.options).propose([1, 2, 1], 2), [2, 1]);
    assert.throws(
      () => ngramMethod({ promptLookupMin: 5, promptLookupMax: 3 }),
      /promptLookupMax \(3\) is below promptLookupMin \(5\)/,
    );
  });
});
