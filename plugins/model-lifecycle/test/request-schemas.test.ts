import assert from 'node:assert/strict';
import { checkBody, LOAD_SCHEMA, SWAP_SCHEMA, validators } from '@nucleus/plugin-model-lifecycle';
import type { NucleusError } from '@nucleus/sdk';

/** The 400 a body gets: its code, message and the field it names. */
function refusal(run: () => unknown): { code: string; message: string; param: string | undefined } {
  try {
    run();
  } catch (err) {
    const e = err as NucleusError;
    assert.equal(e.status, 400);
    return { code: e.code, message: e.message, param: e.param };
  }
  assert.fail('the body was accepted');
}

describe('model-lifecycle: request schemas', () => {
  it('accepts a load with a name, a source and serving settings, and returns it typed', () => {
    const body = { name: 'resnet-2.v1', source: '/models/resnet', workers: 2, warmup: 3, isolation: 'process' };
    assert.deepEqual(checkBody(validators.load, body, 'load request'), body);
    assert.deepEqual(checkBody(validators.swap, { source: '/m', drainTimeoutMs: 0 }, 'swap request'), {
      source: '/m',
      drainTimeoutMs: 0,
    });
  });

  it('names the missing or wrong field and what is wrong with it', () => {
    assert.deepEqual(
      refusal(() => checkBody(validators.load, { source: '/m' }, 'load request')),
      { code: 'invalid_body', message: "load request: body must have required property 'name'", param: undefined },
    );
    assert.deepEqual(
      refusal(() => checkBody(validators.load, { name: '-dash', source: '/m' }, 'load request')),
      {
        code: 'invalid_body',
        message: 'load request: name must match pattern "^[A-Za-z0-9][A-Za-z0-9._-]*$"',
        param: 'name',
      },
    );
    assert.deepEqual(
      refusal(() => checkBody(validators.swap, { source: '/m', drainTimeoutMs: -1 }, 'swap request')),
      { code: 'invalid_body', message: 'swap request: drainTimeoutMs must be >= 0', param: 'drainTimeoutMs' },
    );
    assert.deepEqual(
      refusal(() => checkBody(validators.swap, { source: '/m', preferredBatchSizes: [4, 0] }, 'swap request')),
      {
        code: 'invalid_body',
        message: 'swap request: preferredBatchSizes.1 must be >= 1',
        param: 'preferredBatchSizes.1',
      },
    );
  });

  it('lists the allowed values of an enum and names an unknown property', () => {
    assert.equal(
      refusal(() => checkBody(validators.load, { name: 'm', source: '/m', graphStyle: 'fancy' }, 'load request'))
        .message,
      'load request: graphStyle must be equal to one of the allowed values: generic, contrib',
    );
    assert.equal(
      refusal(() => checkBody(validators.swap, { source: '/m', drainTimeout: 5 }, 'swap request')).message,
      'swap request: body must NOT have additional properties (drainTimeout)',
    );
    assert.equal(
      refusal(() => checkBody(validators.load, 'm', 'load request')).message,
      'load request: body must be object',
    );
  });

  it('a swap takes a drain timeout and a load does not; neither takes an empty source', () => {
    assert.ok('drainTimeoutMs' in SWAP_SCHEMA.properties);
    assert.ok(!('drainTimeoutMs' in LOAD_SCHEMA.properties));
    assert.match(
      refusal(() => checkBody(validators.load, { name: 'm', source: '/m', drainTimeoutMs: 1 }, 'load request')).message,
      /additional properties \(drainTimeoutMs\)/,
    );
    assert.equal(refusal(() => checkBody(validators.swap, { source: '' }, 'swap request')).param, 'source');
    assert.equal(
      refusal(() => checkBody(validators.load, { name: 'x'.repeat(129), source: '/m' }, 'load request')).param,
      'name',
    );
  });
});
