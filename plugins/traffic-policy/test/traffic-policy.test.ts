import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  agreement,
  CANARY_DEFAULTS,
  CanaryController,
  checkPolicy,
  PolicyStore,
  stickyBucket,
  tokenAgreement,
  TrafficRouter,
} from '@nucleus/plugin-traffic-policy';
import { type AlertNotice, NucleusError } from '@nucleus/sdk';
import { eventBus, type LogLine, recordingLogger } from '@nucleus/sdk/testing';

describe('traffic-policy: canary rules on a test clock', () => {
  const settings = {
    ...CANARY_DEFAULTS,
    startPercent: 10,
    stepPercent: 30,
    stepIntervalMs: 1000,
    windowMs: 5000,
    minRequests: 4,
  };

  it('steps up only while the canary has enough answers within bounds, and stops at 100 %', () => {
    const c = new CanaryController(settings, 0);
    assert.equal(c.tick(1000), false, 'no answers yet: the step waits');
    for (let i = 0; i < 4; i++) {
      c.observe('stable', 1000 + i, false, 10);
      c.observe('canary', 1000 + i, false, 11);
    }
    assert.equal(c.tick(1500), true);
    assert.equal(c.percent, 40);
    assert.equal(c.tick(1800), false, 'not due yet');
    assert.equal(c.tick(2500), true);
    assert.equal(c.tick(3500), true);
    assert.deepEqual([c.percent, c.state, c.steps], [100, 'promoted', 3]);
  });

  it('rolls back on the answer that takes its error rate past the bound, and on a slow p99', () => {
    const errors = new CanaryController(settings, 0);
    for (let i = 0; i < 3; i++) assert.equal(errors.observe('canary', i, true, 5), undefined, 'too few to judge');
    const rollback = errors.observe('canary', 3, true, 5);
    assert.equal(rollback?.reason, 'error_rate');
    assert.deepEqual([errors.percent, errors.state], [0, 'rolled_back']);
    assert.equal(errors.tick(10_000), false, 'a rolled back canary stays at 0 %');

    const slow = new CanaryController(settings, 0);
    for (let i = 0; i < 4; i++) slow.observe('stable', i, false, 10);
    for (let i = 0; i < 3; i++) slow.observe('canary', i, false, 12);
    assert.equal(slow.observe('canary', 3, false, 100)?.reason, 'latency');
  });

  it('forgets answers older than its window', () => {
    const c = new CanaryController(settings, 0);
    for (let i = 0; i < 3; i++) c.observe('canary', i, true, 5);
    // The fourth failure comes after the first three left the window: still too few to judge.
    assert.equal(c.observe('canary', 6000, true, 5), undefined);
    assert.equal(c.state, 'stepping');
  });
});

describe('traffic-policy: sticky buckets, agreement and policy checks', () => {
  it('puts a key in the same bucket every time, and different models split independently', () => {
    assert.equal(stickyBucket('m', 'alice'), stickyBucket('m', 'alice'));
    assert.notEqual(stickyBucket('m', 'alice'), stickyBucket('n', 'alice'));
    const buckets = Array.from({ length: 1000 }, (_, i) => stickyBucket('m', `u${i}`));
    assert.ok(buckets.every((b) => b >= 0 && b < 1));
    const low = buckets.filter((b) => b < 0.5).length;
    assert.ok(low > 400 && low < 600, `${low} of 1000 in the lower half`);
  });

  it('compares classifier rows by argmax and generated text by tokens, whichever API answered', () => {
    const v2 = (data: number[]) => ({ outputs: [{ name: 'y', shape: [2, 2], data }] });
    assert.deepEqual(agreement(v2([1, 0, 0, 1]), v2([5, 1, 1, 5])), { kind: 'argmax', value: 1 });
    assert.deepEqual(agreement(v2([1, 0, 0, 1]), v2([0, 1, 0, 1])), { kind: 'argmax', value: 0.5 });
    assert.deepEqual(agreement({ outputs: { y: [[1, 2]] } }, { outputs: { y: [[2, 1]] } }), {
      kind: 'argmax',
      value: 0,
    });
    const chat = (content: string) => ({ choices: [{ message: { role: 'assistant', content } }] });
    assert.deepEqual(agreement(chat('the cat sat down'), chat('the cat ran down')), { kind: 'tokens', value: 0.75 });
    assert.deepEqual(agreement({ text_output: 'a b' }, { text_output: 'a b c d' }), { kind: 'tokens', value: 0.5 });
    assert.equal(tokenAgreement('', ''), 1);
    assert.equal(agreement({ data: [{ embedding: [1] }] }, { data: [{ embedding: [1] }] }), undefined);
  });

  it('refuses a malformed policy with a 400 naming the field', () => {
    assert.throws(
      () => checkPolicy({ type: 'canary', stable: { version: '1' } }),
      (e: NucleusError) => e.status === 400 && e.code === 'invalid_policy' && /canary/.test(e.message),
    );
    assert.throws(() => checkPolicy({ type: 'split' }), /weights, canary, shadow/);
    assert.throws(() => checkPolicy({ type: 'shadow', primary: {}, shadow: { version: '2' } }), NucleusError);
    assert.deepEqual(
      checkPolicy({ type: 'shadow', primary: { version: '1' }, shadow: { model: 'other' } }).type,
      'shadow',
    );
  });

  it('routes by the sticky header, then the OpenAI user field, and leaves requests naming a version alone', () => {
    const events = eventBus();
    const router = new TrafficRouter({ stickyHeader: 'X-User-Id', events, logger: recordingLogger() });
    assert.equal(router.status(), undefined, 'nothing for /status while no policy is set');
    router.set('m', {
      type: 'weights',
      variants: [
        { version: '1', weight: 1 },
        { model: 'm-next', weight: 1 },
      ],
    });
    const pick = (headers: Record<string, string>, body?: Record<string, unknown>) =>
      router.route({ model: 'm', headers, ...(body && { body }) });
    const byHeader = Array.from({ length: 50 }, (_, i) => JSON.stringify(pick({ 'x-user-id': `u${i}` })));
    assert.deepEqual(
      byHeader,
      Array.from({ length: 50 }, (_, i) => JSON.stringify(pick({ 'x-user-id': `u${i}` }))),
    );
    assert.ok(byHeader.includes(JSON.stringify({ model: 'm', version: '1' })));
    assert.ok(byHeader.includes(JSON.stringify({ model: 'm-next' })));
    assert.deepEqual(pick({}, { user: 'u7' }), pick({ 'x-user-id': 'u7' }));
    assert.equal(router.route({ model: 'm', version: '3', headers: {} }), undefined);
    assert.equal(router.route({ model: 'other', headers: {} }), undefined);
    router.stop();
  });

  it('announces a rollback as a critical alert naming the model and the canary', () => {
    const events = eventBus();
    const fired: AlertNotice[] = [];
    events.on('alert.fired', (a) => fired.push(a));
    const logger = recordingLogger();
    const router = new TrafficRouter({ stickyHeader: 'x-user-id', events, logger });
    router.set('m', { type: 'canary', stable: { version: '1' }, canary: { version: '2' }, minRequests: 2 });
    for (let i = 0; i < 2; i++)
      router.observe({ addressed: 'm', model: 'm', version: '2', status: 500, durationMs: 3 });
    router.stop();
    assert.equal(fired.length, 1);
    assert.deepEqual(
      [fired[0]!.name, fired[0]!.severity, fired[0]!.labels.canary],
      ['CanaryRolledBack', 'critical', 'm@2'],
    );
    assert.ok(logger.lines.some((l) => l.level === 'warn' && /rolled back/.test(String(l.msg))));
  });
});

describe('traffic-policy: admin changes kept in the state file', () => {
  const weights = (version: string) => checkPolicy({ type: 'weights', variants: [{ version, weight: 1 }] });
  const dir = mkdtempSync(join(tmpdir(), 'traffic-state-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('restores what was set and removed over the config, across a new store on the same file', () => {
    const file = join(dir, 'state', 'traffic.json');
    const config = { a: weights('1'), b: weights('2') };
    const first = new PolicyStore(file, recordingLogger());
    assert.deepEqual(first.restore(config), config, 'no file yet: the config');
    first.set('c', weights('3'));
    first.set('b', weights('4'));
    first.remove('a');
    const again = new PolicyStore(file, recordingLogger());
    assert.deepEqual(again.restore(config), { b: weights('4'), c: weights('3') });
    // Set again after a removal: it comes back.
    again.set('a', weights('5'));
    assert.deepEqual(new PolicyStore(file, recordingLogger()).restore(config).a, weights('5'));
  });

  it('a corrupt file or a bad stored policy is logged and skipped, never a failed start', () => {
    const file = join(dir, 'corrupt.json');
    writeFileSync(file, '{ not json');
    const lines: LogLine[] = [];
    const config = { a: weights('1') };
    assert.deepEqual(new PolicyStore(file, recordingLogger(lines)).restore(config), config);
    assert.ok(lines.some((l) => l.level === 'warn' && /corrupt/.test(l.msg ?? '')));
    writeFileSync(file, JSON.stringify({ set: { b: { type: 'nonsense' }, c: weights('2') }, removed: [] }));
    const skipped: LogLine[] = [];
    assert.deepEqual(new PolicyStore(file, recordingLogger(skipped)).restore(config), {
      a: weights('1'),
      c: weights('2'),
    });
    assert.ok(skipped.some((l) => l.level === 'warn' && /skipped/.test(l.msg ?? '')));
  });
});
