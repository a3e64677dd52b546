import { strict as assert } from 'node:assert';
import {
  SpeculationAutoOffPolicy,
  type AutoOffState,
} from '@nucleus/core/internal/engine/llm/generation/speculation-auto-off';

const SETTINGS = { minAcceptance: 0.5, window: 8, coolDownSteps: 10, acrossRequests: true };
const fresh = (): AutoOffState => ({ verified: [], coolDown: 0, pausesInARow: 0 });

// Steps a sequence sits out before it drafts again.
function pausedSteps(policy: SpeculationAutoOffPolicy, state: AutoOffState): number {
  let n = 0;
  while (n < 100_000 && policy.paused(state)) n++;
  return n;
}

// The policy on its own: the loop calls begin when a request arrives, paused before each of its steps, record after
// each verify of its draft, and tells it what steps cost.
describe('SpeculationAutoOffPolicy across requests (the server-level prior)', () => {
  it('a request that arrives after one paused starts paused, for the cool-down left, and pauses longer next', () => {
    const policy = new SpeculationAutoOffPolicy(SETTINGS, 4);
    const first = fresh();
    policy.begin(first);
    assert.equal(pausedSteps(policy, first), 0, 'nothing learnt yet: the first request drafts');
    assert.equal(policy.record(first, 4, 0), false);
    assert.equal(policy.record(first, 4, 0), true, 'a window of rejected drafts pauses it');
    assert.equal(first.coolDown, 10);
    for (let i = 0; i < 4; i++) policy.paused(first);
    const second = fresh();
    policy.begin(second);
    assert.equal(pausedSteps(policy, second), 6, 'the next request sits out what is left of the cool-down');
    // Its probe fails too: the pause doubles, as it would have in one long request.
    policy.record(second, 4, 0);
    assert.equal(policy.record(second, 4, 0), true);
    assert.equal(second.coolDown, 20);
    const third = fresh();
    policy.begin(third);
    assert.equal(third.pausesInARow, 2);
    assert.equal(pausedSteps(policy, third), 20);
  });

  it('without acrossRequests (prompt lookup: acceptance is each request’s text) every request judges afresh', () => {
    const policy = new SpeculationAutoOffPolicy({ ...SETTINGS, acrossRequests: false }, 4);
    const first = fresh();
    policy.begin(first);
    policy.record(first, 4, 0);
    assert.equal(policy.record(first, 4, 0), true);
    const second = fresh();
    policy.begin(second);
    assert.equal(pausedSteps(policy, second), 0);
    assert.equal(second.pausesInARow, 0);
  });

  it('a window of drafts that pays clears it: the next request drafts at once', () => {
    const policy = new SpeculationAutoOffPolicy(SETTINGS, 4);
    const first = fresh();
    policy.begin(first);
    policy.record(first, 4, 0);
    policy.record(first, 4, 0);
    pausedSteps(policy, first);
    // After the cool-down its drafts agree: a full window at 100 %.
    assert.equal(policy.record(first, 4, 4), false);
    assert.equal(policy.record(first, 4, 4), false);
    assert.equal(first.pausesInARow, 0);
    const second = fresh();
    policy.begin(second);
    assert.equal(pausedSteps(policy, second), 0);
    assert.equal(second.pausesInARow, 0);
  });

  // A plain step costs 1 ms, a verify 1.2 ms, a draft token 1 ms: even all 4 accepted (5 tokens for 5.2 ms) loses.
  function losingCosts(policy: SpeculationAutoOffPolicy, steps: number, settled = true): void {
    for (let i = 0; i < steps; i++) {
      policy.observePlain(1, 1);
      policy.observeSpeculative(1.2, 1, 4, 4);
    }
    if (settled) assert.ok(policy.expectedSpeedup(1)! < 1);
  }

  it('a draft model that costs more than it can save keeps new requests off for the longest cool-down', () => {
    const policy = new SpeculationAutoOffPolicy(SETTINGS, 4);
    losingCosts(policy, 8);
    const first = fresh();
    policy.begin(first);
    assert.equal(policy.record(first, 4, 4), true, 'paused on cost, whatever the acceptance');
    assert.equal(first.coolDown, 10 * 64);
    const second = fresh();
    policy.begin(second);
    assert.equal(pausedSteps(policy, second), 640);
  });

  it('costs from the first few steps (a warm-up, cold sessions) pause nothing; a spike does not move them', () => {
    const policy = new SpeculationAutoOffPolicy(SETTINGS, 4);
    losingCosts(policy, 7, false);
    assert.equal(policy.expectedSpeedup(1), undefined, 'not settled yet');
    const first = fresh();
    policy.begin(first);
    assert.equal(policy.record(first, 4, 4), false);
    // Settled at 1 ms per plain step, 1.2 per verify, 0.1 per draft token; then one proposal that includes the draft
    // model's prefill of a new prompt costs 100 ms per token: the verdict stands.
    const cheap = new SpeculationAutoOffPolicy(SETTINGS, 4);
    for (let i = 0; i < 8; i++) {
      cheap.observePlain(1, 1);
      cheap.observeSpeculative(1.2, 1, 0.4, 4);
    }
    const before = cheap.expectedSpeedup(1)!;
    assert.ok(before > 3);
    cheap.observeSpeculative(1.2, 1, 400, 4);
    assert.equal(cheap.expectedSpeedup(1), before);
  });
});
