import { strict as assert } from 'node:assert';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CachedReading } from '@nucleus/core/internal/engine/workers/cached-reading';
import { WorkerPool } from '@nucleus/core/internal/engine/workers/worker-pool';
import type { SessionWorkerSpec } from '@nucleus/core/internal/engine/workers/worker-messages';
import { leastLoaded, memoryAware, roundRobin } from '@nucleus/plugin-scheduler';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { f32, scaleModel, writeVersion } from './engine-fixtures.js';

const ADMIN = 'admin-key-0123456789';

describe('worker routing and replicas', () => {
  let dir: string;
  let modelPath: string;
  let pool: WorkerPool | undefined;
  before(() => {
    dir = tempDir('routing');
    modelPath = join(dir, 'scale.onnx');
    writeFileSync(modelPath, scaleModel(2));
  });
  afterEach(async () => {
    await pool?.close(0);
    pool = undefined;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const spec = (): SessionWorkerSpec => ({
    label: 'scale@1',
    modelPath,
    backend: { name: 'cpu', requested: 'cpu', options: { executionProviders: ['cpu'] } },
  });
  const x = () => ({ x: f32([1, 2, 3, 4], [1, 4]) });

  it('round-robin spreads a sequence of batches across the replicas', async () => {
    const strategy = roundRobin();
    pool = new WorkerPool(spec(), 3, { routing: () => strategy });
    await pool.start();
    for (let i = 0; i < 6; i++) assert.deepEqual([...(await pool.run(x())).outputs.y!.data], [2, 4, 6, 8]);
    assert.deepEqual(
      pool.workers.map((w) => w.runs),
      [2, 2, 2],
    );
  });

  it('least-loaded sends a batch to the idle replica, not the busy one', async () => {
    pool = new WorkerPool(spec(), 2, { routing: () => leastLoaded });
    await pool.start();
    const [busy, idle] = pool.workers;
    // The first batch makes replica 0 busy for a while; the next one must not queue behind it.
    busy!.testOnlyBlock(400);
    const slow = pool.run(x());
    let slowDone = false;
    void slow.then(() => (slowDone = true));
    await pool.run(x());
    assert.equal(slowDone, false, 'the second batch waited behind the busy replica');
    await slow;
    assert.deepEqual([busy!.runs, idle!.runs], [1, 1]);
  });

  it('memory-aware with too little free memory for two batches runs them one at a time instead of failing', async () => {
    const batchBytes = 16 * 3;
    pool = new WorkerPool(spec(), 2, { routing: () => memoryAware, freeMemoryBytes: () => batchBytes * 1.5 });
    await pool.start();
    let most = 0;
    const timer = setInterval(() => (most = Math.max(most, pool!.pending)), 1);
    try {
      const runs = Array.from({ length: 4 }, () => pool!.run(x()));
      assert.equal(pool.waiting, 3, 'batches beyond the first wait for memory');
      const results = await Promise.all(runs);
      for (const r of results) assert.deepEqual([...r.outputs.y!.data], [2, 4, 6, 8]);
    } finally {
      clearInterval(timer);
    }
    assert.ok(most <= 1, `${most} batches ran at once`);
    assert.equal(pool.waiting, 0);
  });

  it('a cached reading is read again only once it is older than its age limit, or when asked for a fresh one', () => {
    let now = 1000;
    let reads = 0;
    const reading = new CachedReading(
      () => ++reads,
      200,
      () => now,
    );
    assert.equal(reading.read(), 1);
    now += 199;
    assert.equal(reading.read(), 1, 'still young');
    now += 1;
    assert.equal(reading.read(), 2, 'as old as the limit');
    assert.equal(reading.read(true), 3, 'fresh on demand');
    assert.equal(reading.read(), 3);
  });

  it('memory-aware routing reads host free memory once per interval, not per batch; a batch that waited for room reads it afresh', async () => {
    const batchBytes = 16 * 3;
    let reads = 0;
    let free = batchBytes * 100;
    // A clock that never moves: every reading after the first comes from the cache unless one is asked for fresh.
    const hostFreeMemory = new CachedReading(
      () => (reads++, free),
      200,
      () => 0,
    );
    pool = new WorkerPool(spec(), 2, { routing: () => memoryAware, hostFreeMemory });
    await pool.start();
    for (let i = 0; i < 10; i++) assert.deepEqual([...(await pool.run(x())).outputs.y!.data], [2, 4, 6, 8]);
    assert.equal(reads, 1, 'ten batches routed on one reading');
    // Room for one batch at a time: the others wait, and each, once woken, routes on a new reading.
    free = batchBytes * 1.5;
    hostFreeMemory.read(true);
    reads = 0;
    const runs = Array.from({ length: 3 }, () => pool!.run(x()));
    assert.equal(pool.waiting, 2, 'the reservation of the first batch leaves no room for the others');
    for (const r of await Promise.all(runs)) assert.deepEqual([...r.outputs.y!.data], [2, 4, 6, 8]);
    assert.ok(reads >= 2, `${reads} fresh readings for the batches that waited`);
  });

  it('routes through the strategy named by workers.routing, and follows workers.perModel 1 → 3 → 1 while 16 clients keep sending', async () => {
    writeVersion(join(dir, 'models'), 'scale', '1', scaleModel(2));
    let kit: TestKernel | undefined;
    try {
      kit = await startTestKernel({
        plugins: [join(REPO_ROOT, 'plugins/api-kserve'), join(REPO_ROOT, 'plugins/scheduler')],
        env: { NUCLEUS_ADMIN_KEY: ADMIN },
        config: {
          modelRepository: join(dir, 'models'),
          'workers.routing': 'round-robin',
          'batching.maxQueueDelayMs': 0,
        },
      });
      const k = kit;
      const model = () => k.kernel.inference.loadedModel('scale');
      const auth = { authorization: `Bearer ${ADMIN}` };
      const body = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };
      let stop = false;
      const failures: string[] = [];
      let ok = 0;
      const client = async (): Promise<void> => {
        while (!stop) {
          const res = await k.request('/v2/models/scale/infer', { body, headers: auth });
          if (res.status === 200 && (res.body as { outputs: Array<{ data: number[] }> }).outputs[0]!.data[3] === 8)
            ok++;
          else failures.push(`${res.status} ${JSON.stringify(res.body)}`);
        }
      };
      const clients = Array.from({ length: 16 }, () => client());
      const patch = async (perModel: number): Promise<void> => {
        const res = await k.request('/admin/config', {
          method: 'PATCH',
          body: { workers: { perModel } },
          headers: auth,
        });
        assert.equal(res.status, 200, JSON.stringify(res.body));
      };
      const until = async (what: string, check: () => boolean): Promise<void> => {
        const deadline = Date.now() + 20_000;
        while (!check()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      try {
        await new Promise((r) => setTimeout(r, 200));
        await patch(3);
        await until('3 replicas', () => model().pool.workers.length === 3);
        const before = ok;
        await until(
          'traffic on the new replicas',
          () => ok > before + 30 && model().pool.workers.every((w) => w.runs > 0),
        );
        await patch(1);
        await until('1 replica', () => model().pool.workers.length === 1 && model().pool.pending <= 16);
        const after = ok;
        await until('traffic after shrinking', () => ok > after + 30);
      } finally {
        stop = true;
        await Promise.all(clients);
      }
      assert.deepEqual(failures, []);
      assert.equal(model().pool.workers.length, 1);
      assert.ok(ok > 60, `${ok} requests answered`);
    } finally {
      await kit?.stop();
    }
  });
});
