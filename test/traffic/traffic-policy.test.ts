import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { AlertNotice } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { startTestKernel, type TestKernel, type TestResponse } from '@nucleus/sdk/testing';
import { scaleModel, writeVersion } from '../engine/engine-fixtures.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { API_KSERVE } from '../api-kserve/kserve-fixtures.js';

const TRAFFIC = join(REPO_ROOT, 'plugins/traffic-policy');
const ALERTS = join(REPO_ROOT, 'plugins/alerts');
const METRICS = join(REPO_ROOT, 'plugins/metrics');
const ADMIN_KEY = 'traffic-admin-key-0123456789';

// `row = table[idx + offset]` over a 4-row table: with an offset past the table every run fails inside ORT, a real
// server-side failure (500) on a version whose requests are perfectly well formed.
function lookupModel(offset: number): Uint8Array {
  const g = new GraphBuilder('lookup');
  const idx = g.input('idx', 'int64', [1]);
  const table = g.initializer('table', Float32Array.from([0, 1, 10, 11, 20, 21, 30, 31]), [4, 2]);
  const shifted = g.ops.add(idx, g.scalar(BigInt(offset), 'int64'));
  const row = g.ops.gather(table, shifted, 0, { outputs: ['row'] });
  g.output(row, 'float32', [1, 2]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

interface V2Answer {
  model_version: string;
  outputs: Array<{ name: string; data: number[] }>;
}

/** A loopback webhook that keeps what it is sent. */
async function webhook(): Promise<{
  server: Server;
  url: string;
  bodies: Array<{ alerts: Array<{ labels: Record<string, string> }> }>;
}> {
  const bodies: Array<{ alerts: Array<{ labels: Record<string, string> }> }> = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString()));
    req.on('end', () => {
      bodies.push(JSON.parse(text) as (typeof bodies)[number]);
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, bodies };
}

/** Polls `check` every 50 ms, at most `tries` times; the last answer is returned either way. */
async function poll<T>(read: () => Promise<T>, done: (value: T) => boolean, tries = 200): Promise<T> {
  let value = await read();
  for (let i = 0; i < tries && !done(value); i++) {
    await new Promise((r) => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

describe('traffic policies: versions side by side under one model name', () => {
  let kit: TestKernel;
  let dir: string;
  let hook: Awaited<ReturnType<typeof webhook>>;
  const alerts: AlertNotice[] = [];

  before(async () => {
    dir = tempDir('traffic');
    writeVersion(`${dir}/models`, 'scale', '1', scaleModel(1));
    writeVersion(`${dir}/models`, 'scale', '2', scaleModel(2));
    // Answers differently from version 1: the argmax of each row becomes its argmin.
    writeVersion(`${dir}/models`, 'scale', '3', scaleModel(-1));
    writeVersion(`${dir}/models`, 'lookup', '1', lookupModel(0));
    writeVersion(`${dir}/models`, 'lookup', '2', lookupModel(100));
    hook = await webhook();
    kit = await startTestKernel({
      plugins: [API_KSERVE, TRAFFIC, ALERTS, METRICS],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      builtinModels: false,
      config: {
        modelRepository: `${dir}/models`,
        'plugin.traffic-policy.policies': {
          scale: {
            type: 'weights',
            variants: [
              { version: '1', weight: 80 },
              { version: '2', weight: 20 },
            ],
          },
        },
        'plugin.alerts.rules': [],
        'plugin.alerts.log': false,
        'plugin.alerts.webhooks': [{ url: hook.url }],
        // The circuit breaker would answer the failing canary's requests itself; this test is about the canary.
        'breaker.failureThreshold': 1000,
      },
    });
    kit.kernel.events.on('alert.fired', (a) => alerts.push(a));
  });
  after(async () => {
    await kit?.stop();
    await new Promise((r) => hook?.server.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  const send = (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...init.headers } });
  const v2 = (data: number[]) => ({ inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data }] });
  const status = async () =>
    (
      (await send('/status')).body as {
        traffic?: { 'traffic-policy': { models: Record<string, Record<string, unknown>> } };
      }
    ).traffic?.['traffic-policy'].models ?? {};

  /** Runs `count` requests, `width` at a time. */
  async function many<T>(count: number, width: number, one: (i: number) => Promise<T>): Promise<T[]> {
    const out: T[] = new Array(count);
    let next = 0;
    await Promise.all(
      Array.from({ length: width }, async () => {
        while (next < count) {
          const i = next++;
          out[i] = await one(i);
        }
      }),
    );
    return out;
  }

  it('splits 2,000 users 80/20 within ±3 %, keeps each user on one version on every API, and says which answered', async () => {
    const answers = await many(2000, 16, (i) =>
      send('/v2/models/scale/infer', { body: v2([1, 2, 3, 4]), headers: { 'x-user-id': `user-${i}` } }),
    );
    const versions = answers.map((res) => {
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const body = res.body as V2Answer;
      assert.equal(
        res.headers.get('x-model-version'),
        body.model_version,
        'the header names the version that answered',
      );
      // Each version answers with its own factor, so the version label is not just a label.
      assert.deepEqual(
        body.outputs[0]!.data,
        [1, 2, 3, 4].map((x) => x * Number(body.model_version)),
      );
      return body.model_version;
    });
    const share = versions.filter((v) => v === '1').length / versions.length;
    assert.ok(Math.abs(share - 0.8) <= 0.03, `version 1 answered ${(share * 100).toFixed(1)} % of requests`);
    assert.ok(versions.includes('2'));

    // The same user, again and again, over KServe and the native endpoint: always the version it got first.
    for (let i = 0; i < 40; i++) {
      const user = `user-${i * 37}`;
      for (let round = 0; round < 3; round++) {
        const kserve = await send('/v2/models/scale/infer', { body: v2([1, 1, 1, 1]), headers: { 'x-user-id': user } });
        const native = await send('/infer', {
          body: { model: 'scale', inputs: { x: [[1, 1, 1, 1]] } },
          headers: { 'x-user-id': user },
        });
        assert.equal((kserve.body as V2Answer).model_version, versions[i * 37], `${user} over KServe`);
        assert.equal((native.body as { version: string }).version, versions[i * 37], `${user} over /infer`);
        assert.equal(native.headers.get('x-model-version'), versions[i * 37]);
      }
    }

    // /status shows the split live: counts per version, and the shares they make.
    const scale = (await status()).scale as { type: string; variants: Array<{ version: string; requests: number }> };
    assert.equal(scale.type, 'weights');
    const counted = Object.fromEntries(scale.variants.map((v) => [v.version, v.requests]));
    // 40 users × 3 rounds × 2 APIs after the first 2,000.
    const stickyOn2 = Array.from({ length: 40 }, (_, i) => versions[i * 37]).filter((v) => v === '2').length;
    assert.equal(counted['1']! + counted['2']!, 2000 + 240);
    assert.equal(counted['2'], versions.filter((v) => v === '2').length + 6 * stickyOn2);
    // The request metrics count the same split under their `model_version` label.
    const metrics = String((await send('/metrics')).body);
    for (const v of ['1', '2']) {
      const line = new RegExp(`request_success_total\\{model_name="scale",model_version="${v}"[^}]*\\} (\\d+)`).exec(
        metrics,
      );
      assert.equal(Number(line?.[1]), counted[v], `metrics for version ${v}`);
    }

    // A request that names its version gets it, whatever the policy.
    const pinned = await send('/v2/models/scale/versions/2/infer', {
      body: v2([1, 1, 1, 1]),
      headers: { 'x-user-id': 'user-0' },
    });
    assert.equal((pinned.body as V2Answer).model_version, '2');
  });

  it('rolls a failing canary back to 0 % within its window and sends an alert, then serves every request from stable', async () => {
    const set = await send('/admin/traffic/lookup', {
      method: 'PUT',
      body: {
        type: 'canary',
        stable: { version: '1' },
        canary: { version: '2' },
        startPercent: 50,
        stepIntervalMs: 60_000,
        windowMs: 60_000,
        minRequests: 5,
      },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const infer = (user: string) =>
      send('/v2/models/lookup/infer', {
        body: { inputs: [{ name: 'idx', shape: [1], datatype: 'INT64', data: [2] }] },
        headers: { 'x-user-id': user },
      });
    const traffic = async () =>
      (await status()).lookup as {
        canary: { state: string; percent: number; rollback?: { reason: string } };
        variants: Array<{ version: string; requests: number; errors: number }>;
      };

    const failures: TestResponse[] = [];
    for (let i = 0; i < 200 && (await traffic()).canary.state === 'stepping'; i++) {
      const res = await infer(`canary-user-${i}`);
      if (res.status !== 200) failures.push(res);
    }
    const state = await traffic();
    assert.equal(state.canary.state, 'rolled_back');
    assert.equal(state.canary.percent, 0);
    assert.equal(state.canary.rollback?.reason, 'error_rate');
    // Judged at the first moment it could be: as soon as the canary had `minRequests` answers in its window.
    const canary = state.variants.find((v) => v.version === '2')!;
    assert.deepEqual([canary.requests, canary.errors, failures.length], [5, 5, 5]);
    assert.ok(failures.every((f) => f.status === 500 && f.headers.get('x-model-version') === '2'));

    const alert = alerts.find((a) => a.name === 'CanaryRolledBack');
    assert.ok(alert, 'an alert fired on the bus');
    assert.equal(alert.severity, 'critical');
    assert.deepEqual(
      [alert.labels.model, alert.labels.canary, alert.labels.reason],
      ['lookup', 'lookup@2', 'error_rate'],
    );
    const sent = await poll(
      async () => hook.bodies,
      (b) => b.some((x) => x.alerts.some((a) => a.labels.alertname === 'CanaryRolledBack')),
    );
    assert.ok(
      sent.some((x) => x.alerts.some((a) => a.labels.alertname === 'CanaryRolledBack' && a.labels.model === 'lookup')),
      'the alerts plugin sent it to its webhook',
    );

    // Users who were on the canary are back on stable.
    for (let i = 0; i < 30; i++) {
      const res = await infer(`canary-user-${i}`);
      assert.equal(res.status, 200);
      assert.equal((res.body as V2Answer).model_version, '1');
    }
  });

  it('copies requests to a shadow whose answers clients never see, and reports its agreement', async () => {
    const set = await send('/admin/traffic/scale', {
      method: 'PUT',
      body: { type: 'shadow', primary: { version: '1' }, shadow: { version: '3' } },
    });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    const before = await send('/status');
    const shadowRuns = (body: unknown) =>
      (
        body as { models: Array<{ name: string; versions: Array<{ version: string; requests?: { total: number } }> }> }
      ).models
        .find((m) => m.name === 'scale')!
        .versions.find((v) => v.version === '3')!.requests!.total;
    const ranBefore = shadowRuns(before.body);

    // Rows the shadow ranks the other way round (disagree), and rows of equal values (argmax 0 for both: agree).
    for (let i = 0; i < 10; i++) {
      const differ = await send('/v2/models/scale/infer', { body: v2([1, 2, 3, 4]) });
      assert.equal(differ.status, 200);
      assert.deepEqual(
        [(differ.body as V2Answer).model_version, (differ.body as V2Answer).outputs[0]!.data],
        ['1', [1, 2, 3, 4]],
      );
      assert.equal(differ.headers.get('x-model-version'), '1');
      const same = await send('/infer', { body: { model: 'scale', inputs: { x: [[5, 5, 5, 5]] } } });
      assert.deepEqual((same.body as { outputs: { y: number[][] } }).outputs.y, [[5, 5, 5, 5]]);
    }
    const shadow = await poll(
      async () =>
        (
          (await status()).scale as {
            shadow: { copies: number; compared: number; agreement: number | null; agreementKind?: string };
          }
        ).shadow,
      (s) => s.copies >= 20,
    );
    assert.deepEqual(shadow, { ...shadow, copies: 20, compared: 20, agreement: 0.5, agreementKind: 'argmax' });
    assert.equal(shadowRuns((await send('/status')).body) - ranBefore, 20, 'version 3 ran every copy');

    const removed = await send('/admin/traffic/scale', { method: 'DELETE' });
    assert.equal(removed.status, 200);
  });

  it('refuses a policy that is malformed or names a version that is not loaded, saying what is wrong', async () => {
    const bad = await send('/admin/traffic/scale', { method: 'PUT', body: { type: 'weights' } });
    assert.equal(bad.status, 400);
    assert.equal((bad.body as { error: { code: string } }).error.code, 'invalid_policy');
    const missing = await send('/admin/traffic/scale', {
      method: 'PUT',
      body: { type: 'canary', stable: { version: '1' }, canary: { version: '9' } },
    });
    assert.equal(missing.status, 400);
    assert.match((missing.body as { error: { message: string } }).error.message, /version '9' of model 'scale'/);
    const none = await send('/admin/traffic/nothing', { method: 'DELETE' });
    assert.equal(none.status, 404);
  });
});

describe('traffic policies set through the admin API, with a state file', () => {
  it('survive a restart of the server', async () => {
    const dir = tempDir('traffic-state');
    writeVersion(`${dir}/models`, 'scale', '1', scaleModel(1));
    writeVersion(`${dir}/models`, 'scale', '2', scaleModel(2));
    const start = () =>
      startTestKernel({
        plugins: [API_KSERVE, TRAFFIC],
        env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
        builtinModels: false,
        config: { modelRepository: `${dir}/models`, 'plugin.traffic-policy.stateFile': `${dir}/traffic.json` },
      });
    const admin = (kit: TestKernel, path: string, init: { method?: string; body?: unknown } = {}) =>
      kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
    const policy = {
      type: 'weights',
      variants: [
        { version: '1', weight: 30 },
        { version: '2', weight: 70 },
      ],
    };
    try {
      const first = await start();
      try {
        assert.equal((await admin(first, '/admin/traffic/scale', { method: 'PUT', body: policy })).status, 200);
      } finally {
        await first.stop();
      }
      const second = await start();
      try {
        const listed = (await admin(second, '/admin/traffic')).body as { policies: Record<string, unknown> };
        assert.deepEqual(listed.policies.scale, policy);
      } finally {
        await second.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
