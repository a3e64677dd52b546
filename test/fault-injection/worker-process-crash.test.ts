import { strict as assert } from 'node:assert';
import { spawn } from 'node:child_process';
import type { Nucleus } from '@nucleus/core';
import { loadConfig } from '@nucleus/core/kernel/config';
import type { NucleusError, NucleusEvents, Tensor } from '@nucleus/sdk';
import { call, startKServe } from '../api-kserve/kserve-fixtures.js';
import { builtinModel, i64, startKernel, within } from '../engine/engine-fixtures.js';
import { CLI, REPO_ROOT } from '../helpers/paths.js';
import { followServer } from '../helpers/server-child.js';

type Health = NucleusEvents['worker.health'] & { at: number };

/** Whether a process with this id still exists (a stopped one counts). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` every 20 ms (or at every turn of the event loop with `eager`) until it holds, up to `ms`. */
async function until(check: () => boolean, ms: number, what: string, eager = false): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await new Promise((r) => (eager ? setImmediate(r) : setTimeout(r, 20)));
  }
}

describe('fault injection: worker processes (workers.isolation = process)', () => {
  let kernel: Nucleus | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  const long = (seed: number): Record<string, Tensor> => ({
    input_ids: i64(
      Array.from({ length: 128 }, (_, i) => (seed * 7 + i) % 90),
      [1, 128],
    ),
    attention_mask: i64(new Array(128).fill(1), [1, 128]),
  });

  async function startBert(config: Record<string, unknown>): Promise<{ k: Nucleus; health: Health[] }> {
    const bert = await builtinModel('bert-tiny');
    const health: Health[] = [];
    kernel = await startKernel(
      { models: [{ name: 'bert', path: bert.modelPath }], 'workers.isolation': 'process', ...config },
      { before: (k) => k.events.on('worker.health', (e) => health.push({ ...e, at: Date.now() })) },
    );
    return { k: kernel, health };
  }

  it('takes workers.isolation and models[].isolation as thread or process, and refuses anything else naming the key', () => {
    const loaded = loadConfig({
      env: { NUCLEUS_WORKERS_ISOLATION: 'process' },
      cli: { models: [{ name: 'a', path: 'a.onnx', isolation: 'thread' }] },
    }).config;
    assert.equal(loaded.workers.isolation, 'process');
    assert.equal(loaded.models[0]!.isolation, 'thread');
    assert.equal(loadConfig({ env: {} }).config.workers.isolation, 'thread', 'threads by default');
    assert.throws(() => loadConfig({ env: {}, cli: { 'workers.isolation': 'fork' } }), /workers\.isolation/);
    assert.throws(
      () => loadConfig({ env: {}, cli: { models: [{ name: 'a', path: 'a.onnx', isolation: 'fork' }] } }),
      /isolation/,
    );
  });

  it('serves from child processes whose pids and measured memory /status shows', async () => {
    const { k } = await startBert({ 'workers.perModel': 2 });
    const status = k.inference.get('bert').status!;
    assert.equal(status.isolation, 'process');
    const replicas = status.replicas!;
    assert.equal(replicas.length, 2);
    for (const r of replicas) {
      assert.equal(r.state, 'serving');
      assert.ok(
        r.pid !== undefined && r.pid !== process.pid && alive(r.pid),
        `replica ${r.id} runs in a process of its own`,
      );
    }
    assert.notEqual(replicas[0]!.pid, replicas[1]!.pid);
    await until(
      () => (k.inference.get('bert').status!.replicas ?? []).every((r) => (r.rssBytes ?? 0) > 10_000_000),
      5000,
      'a memory report from each replica',
    );
    const result = await k.inference.infer({ model: 'bert', inputs: long(1) });
    assert.deepEqual(result.outputs.last_hidden_state!.shape, [1, 128, 32]);
  });

  it('SIGKILL with two replicas: every accepted request gets its correct result, the death is seen at once and the replica restarts with backoff', async () => {
    const { k, health } = await startBert({
      'workers.perModel': 2,
      'batching.maxBatchSize': 4,
      'breaker.failureThreshold': 1000,
    });
    const model = k.inference.loadedModel('bert');
    // The answers each input must get, from a run before any fault.
    const expected = await Promise.all(
      Array.from({ length: 80 }, (_, i) => k.inference.infer({ model: 'bert', inputs: long(i) })),
    );
    const pending = Array.from({ length: 80 }, (_, i) => k.inference.infer({ model: 'bert', inputs: long(i) }));
    await until(() => model.pool.workers.some((w) => w.pending > 0), 5000, 'a run in flight', true);
    const victim = model.pool.workers.find((w) => w.pending > 0)!;
    const pid = victim.pid!;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const settled = await within(Promise.allSettled(pending), 30_000, 'requests to the killed replica');
    const failed = settled
      .filter((s): s is PromiseRejectedResult => s.status === 'rejected')
      .map((s) => (s.reason as NucleusError).message);
    assert.deepEqual(failed, [], 'no request fails: the batches are re-run on the healthy replica');
    for (const [i, s] of settled.entries()) {
      const got = (s as PromiseFulfilledResult<{ outputs: Record<string, Tensor> }>).value.outputs.last_hidden_state!;
      assert.deepEqual(got.data, expected[i]!.outputs.last_hidden_state!.data, `request ${i} has its own answer`);
    }
    const down = health.find((h) => !h.healthy)!;
    assert.ok(down, 'an unhealthy event');
    assert.ok(down.at - killedAt < 5000, `detected in ${down.at - killedAt} ms`);
    assert.match(down.reason ?? '', /SIGKILL/);
    assert.equal(down.backoffMs, 0, 'the first restart is immediate');
    await until(() => health.some((h) => h.healthy), 10_000, 'the replica serving again');
    assert.ok(!alive(pid), 'the killed process is gone');
    assert.notEqual(victim.pid, pid, 'a new process took its place');
    // A second death before the new process has answered a run backs off before the next restart.
    const second = victim.pid!;
    process.kill(second, 'SIGKILL');
    await until(() => health.filter((h) => !h.healthy).length === 2, 5000, 'the second death');
    const again = health.filter((h) => !h.healthy)[1]!;
    assert.ok((again.backoffMs ?? 0) >= 100, `backoff after a second death in a row: ${again.backoffMs} ms`);
    await until(() => health.filter((h) => h.healthy).length === 2, 10_000, 'the replica serving after the backoff');
    const back = health.filter((h) => h.healthy)[1]!;
    assert.ok(back.at - again.at >= (again.backoffMs ?? 0), 'the restart waited for the backoff');
    const status = k.inference.get('bert').status!;
    assert.equal(status.workerRestarts, 2);
    assert.deepEqual(
      status.replicas!.map((r) => r.state),
      ['serving', 'serving'],
    );
    const next = await within(
      k.inference.infer({ model: 'bert', inputs: long(3) }),
      10_000,
      'a request after the restarts',
    );
    assert.deepEqual(next.outputs.last_hidden_state!.data, expected[3]!.outputs.last_hidden_state!.data);
  });

  it('SIGKILL with one replica: pending requests get a definite 503 and the replica comes back', async () => {
    const { k, health } = await startBert({ 'workers.perModel': 1, 'breaker.failureThreshold': 1000 });
    const model = k.inference.loadedModel('bert');
    const pending = Array.from({ length: 40 }, (_, i) => k.inference.infer({ model: 'bert', inputs: long(i) }));
    await until(() => model.pool.workers[0]!.pending > 0, 5000, 'a run in flight', true);
    process.kill(model.pool.workers[0]!.pid!, 'SIGKILL');
    const settled = await within(Promise.allSettled(pending), 30_000, 'requests to the killed worker');
    const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
    assert.ok(rejected.length > 0, 'the kill hit at least one request');
    for (const s of rejected) {
      assert.equal((s.reason as NucleusError).status, 503);
      assert.equal((s.reason as NucleusError).code, 'worker_exited');
    }
    await until(() => health.some((h) => h.healthy), 10_000, 'the replica serving again');
    const next = await within(k.inference.infer({ model: 'bert', inputs: long(1) }), 10_000, 'the next request');
    assert.deepEqual(next.outputs.last_hidden_state!.shape, [1, 128, 32]);
    assert.equal(k.inference.get('bert').status!.workerRestarts, 1);
  });

  it('a replica that keeps dying before it runs anything is given up after five restarts, with growing backoff; the other serves', async () => {
    const { k, health } = await startBert({ 'workers.perModel': 2, 'breaker.failureThreshold': 1000 });
    const victim = k.inference.loadedModel('bert').pool.workers[0]!;
    for (let death = 1; death <= 6; death++) {
      await until(() => victim.pid !== undefined, 15_000, `restart ${death - 1}`);
      process.kill(victim.pid!, 'SIGKILL');
      await until(() => health.filter((h) => !h.healthy).length === death, 5000, `death ${death} being seen`);
    }
    const downs = health.filter((h) => !h.healthy);
    assert.deepEqual(
      downs.map((h) => h.backoffMs),
      [0, 100, 200, 400, 800, undefined],
    );
    assert.equal(downs[5]!.gaveUp, true);
    const status = k.inference.get('bert').status!;
    assert.deepEqual(
      status.replicas!.map((r) => r.state),
      ['failed', 'serving'],
    );
    assert.match(status.replicas![0]!.lastExit ?? '', /SIGKILL/);
    const results = await within(
      Promise.all(Array.from({ length: 8 }, (_, i) => k.inference.infer({ model: 'bert', inputs: long(i) }))),
      10_000,
      'requests beside a given-up replica',
    );
    for (const r of results) assert.deepEqual(r.outputs.last_hidden_state!.shape, [1, 128, 32]);
  });

  it('workers.maxRestarts sets how many restarts in a row a replica gets before it is given up', async () => {
    const { k, health } = await startBert({
      'workers.perModel': 2,
      'breaker.failureThreshold': 1000,
      'workers.maxRestarts': 1,
    });
    const victim = k.inference.loadedModel('bert').pool.workers[0]!;
    for (let death = 1; death <= 2; death++) {
      await until(() => victim.pid !== undefined, 15_000, `restart ${death - 1}`);
      process.kill(victim.pid!, 'SIGKILL');
      await until(() => health.filter((h) => !h.healthy).length === death, 5000, `death ${death} being seen`);
    }
    const downs = health.filter((h) => !h.healthy);
    assert.deepEqual(
      downs.map((h) => [h.backoffMs, h.gaveUp]),
      [
        [0, undefined],
        [undefined, true],
      ],
    );
    assert.deepEqual(
      k.inference.get('bert').status!.replicas!.map((r) => r.state),
      ['failed', 'serving'],
    );
  });

  it('a frozen process (SIGSTOP) is noticed by its missing heartbeat, killed and replaced; the other replica serves meanwhile', async () => {
    const { k, health } = await startBert({
      'workers.perModel': 2,
      'workers.heartbeatTimeoutMs': 1000,
      'breaker.failureThreshold': 1000,
    });
    const model = k.inference.loadedModel('bert');
    const victim = model.pool.workers[0]!;
    const pid = victim.pid!;
    const stoppedAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    try {
      const results = await within(
        Promise.all(Array.from({ length: 10 }, (_, i) => k.inference.infer({ model: 'bert', inputs: long(i) }))),
        30_000,
        'requests beside a frozen replica',
      );
      for (const r of results) assert.deepEqual(r.outputs.last_hidden_state!.shape, [1, 128, 32]);
      await until(() => health.some((h) => !h.healthy), 5000, 'the frozen process being noticed');
      const down = health.find((h) => !h.healthy)!;
      assert.ok(down.at - stoppedAt < 5000, `noticed in ${down.at - stoppedAt} ms`);
      assert.match(down.reason ?? '', /no heartbeat/);
      await until(() => health.some((h) => h.healthy), 10_000, 'the replacement serving');
      await until(() => !alive(pid), 5000, 'the frozen process ending');
      assert.notEqual(victim.pid, pid);
    } finally {
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('a hung run is ended by killing its process (workers.runTimeoutMs), not cut loose', async () => {
    const { k } = await startBert({
      'workers.perModel': 1,
      'workers.runTimeoutMs': 300,
      'breaker.failureThreshold': 1000,
    });
    const worker = k.inference.loadedModel('bert').pool.workers[0]!;
    const pid = worker.pid!;
    worker.testOnlyBlock(60_000);
    const settled = await within(
      Promise.allSettled([k.inference.infer({ model: 'bert', inputs: long(1) })]),
      10_000,
      'the request on the hung worker',
    );
    assert.equal(settled[0]!.status, 'rejected');
    assert.equal(((settled[0] as PromiseRejectedResult).reason as NucleusError).code, 'worker_hung');
    await until(() => !alive(pid), 5000, 'the hung process being killed');
    const next = await within(
      k.inference.infer({ model: 'bert', inputs: long(2) }),
      10_000,
      'the request after the hang',
    );
    assert.deepEqual(next.outputs.last_hidden_state!.shape, [1, 128, 32]);
  });

  it('worker processes end with a server that is killed outright (no orphans)', async function () {
    this.timeout(120_000);
    const server = spawn(process.execPath, [CLI, 'serve', '--port', '0', '--host', '127.0.0.1'], {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        NUCLEUS_LOGGING_LEVEL: 'warn',
        NUCLEUS_PLUGINS_WATCH: 'false',
        NUCLEUS_WORKERS_ISOLATION: 'process',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const followed = followServer(server);
    let pids: number[] = [];
    try {
      const url = await followed.url;
      const status = (await (await fetch(`${url}/status`, { signal: AbortSignal.timeout(10_000) })).json()) as {
        models: { versions: { workers?: { replicas?: { pid?: number }[] } }[] }[];
      };
      pids = status.models.flatMap((m) => m.versions.flatMap((v) => (v.workers?.replicas ?? []).map((r) => r.pid!)));
      assert.ok(
        pids.length > 0 && pids.every((pid) => pid !== server.pid && alive(pid)),
        `worker processes: ${JSON.stringify(pids)}`,
      );
      const exited = new Promise<void>((resolve) => server.on('exit', () => resolve()));
      server.kill('SIGKILL');
      await exited;
      await until(() => pids.every((pid) => !alive(pid)), 10_000, 'the worker processes ending with the server');
    } finally {
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGKILL');
      for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  });

  it('over HTTP: KServe v2 and native infer while a worker process is killed answer 200 or a definite JSON error', async () => {
    const kit = await startKServe({
      'workers.isolation': 'process',
      'workers.perModel': 2,
      'breaker.failureThreshold': 1000,
    });
    try {
      const ids = Array.from({ length: 128 }, (_, i) => i % 90);
      const v2 = () =>
        call(kit, '/v2/models/bert-tiny/infer', {
          body: {
            inputs: [
              { name: 'input_ids', datatype: 'INT64', shape: [1, 128], data: ids },
              { name: 'attention_mask', datatype: 'INT64', shape: [1, 128], data: new Array(128).fill(1) },
            ],
          },
        });
      const native = () =>
        call(kit, '/infer', {
          body: { model: 'bert-tiny', inputs: { input_ids: [ids], attention_mask: [new Array(128).fill(1)] } },
        });
      const before = await v2();
      assert.equal(before.status, 200, JSON.stringify(before.body));
      const model = kit.kernel.inference.loadedModel('bert-tiny');
      const requests = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? v2() : native()));
      await until(() => model.pool.workers.some((w) => w.pending > 0), 5000, 'a run in flight', true);
      process.kill(model.pool.workers.find((w) => w.pending > 0)!.pid!, 'SIGKILL');
      const responses = await within(Promise.all(requests), 30_000, 'HTTP requests during the kill');
      for (const res of responses) {
        if (res.status === 200) continue;
        assert.equal(res.status, 503, JSON.stringify(res.body));
        assert.match((res.body as { error: { code: string } }).error.code, /^worker_/);
      }
      const ok = responses.filter((r) => r.status === 200);
      assert.ok(ok.length > 0);
      const v2ok =
        ok.find((r) => (r.body as { outputs?: unknown }).outputs && !(r.body as { model?: unknown }).model) ?? ok[0]!;
      assert.ok(JSON.stringify(v2ok.body).length > 100);
      const status = await call(kit, '/status');
      assert.equal(status.status, 200);
      const versions = (
        status.body as { models: { name: string; versions: { workers: { restarts: number; isolation: string } }[] }[] }
      ).models.find((m) => m.name === 'bert-tiny')!.versions;
      assert.equal(versions[0]!.workers.isolation, 'process');
      assert.equal(versions[0]!.workers.restarts, 1);
      const after = await v2();
      assert.equal(after.status, 200, JSON.stringify(after.body));
      // Worker processes report what they really hold, in place of the estimate from the model file.
      await until(
        () => (model.info().status?.replicas ?? []).every((r) => r.rssBytes !== undefined),
        5000,
        'memory reports from the new replica',
      );
      const memory = await call(kit, '/monitor/memory');
      assert.equal(memory.status, 200);
      type MemoryRow = {
        name: string;
        measuredBytes?: number;
        estimatedBytes?: number;
        replicas?: { pid: number; rssBytes: number }[];
      };
      const bert = (memory.body as { models: MemoryRow[] }).models.find((m) => m.name === 'bert-tiny')!;
      assert.equal(bert.estimatedBytes, undefined);
      assert.equal(bert.replicas!.length, 2);
      assert.ok(bert.replicas!.every((r) => r.rssBytes > 10_000_000 && r.pid !== process.pid));
      assert.equal(bert.measuredBytes, bert.replicas![0]!.rssBytes + bert.replicas![1]!.rssBytes);
    } finally {
      await kit.stop();
    }
  });
});
