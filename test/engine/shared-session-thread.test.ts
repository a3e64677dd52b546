import { strict as assert } from 'node:assert';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Nucleus } from '@nucleus/core';
import { SessionWorkerClient } from '@nucleus/core/internal/engine/index';
import type { SessionWorkerSpec } from '@nucleus/core/internal/engine/index';
import { SharedSessionThread } from '@nucleus/core/internal/engine/workers/shared-session-thread';
import { NucleusError, type Tensor } from '@nucleus/sdk';
import { tempDir } from '../helpers/paths.js';
import { f32, scaleModel, startKernel, within } from './engine-fixtures.js';

const FACTORS = [2, 3, 5];

// `y = x * factor`, each in a folder of its own, as a model repository keeps them.
function writeScaleModels(root: string): Map<number, string> {
  const paths = new Map<number, string>();
  for (const factor of FACTORS) {
    const dir = join(root, `scale${factor}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx'), scaleModel(factor));
    paths.set(factor, join(dir, 'model.onnx'));
  }
  return paths;
}

function spec(factor: number, modelPath: string): SessionWorkerSpec {
  return {
    label: `scale${factor}@1`,
    modelPath,
    backend: { name: 'cpu', requested: 'cpu', options: { executionProviders: ['cpu'] } },
  };
}

const row = (v: number): Record<string, Tensor> => ({ x: f32([v, v + 1, v + 2, v + 3], [1, 4]) });
const answer = (v: number, factor: number): number[] => [v, v + 1, v + 2, v + 3].map((n) => n * factor);

async function expectRight(client: SessionWorkerClient, factor: number, v: number): Promise<void> {
  const result = await within(client.run(row(v)), 10_000, `a run of ${client.spec.label}`);
  assert.deepEqual(Array.from(result.outputs.y!.data as Float32Array), answer(v, factor), client.spec.label);
}

describe('shared session thread: small models in one worker thread', () => {
  let paths: Map<number, string>;
  let host: SharedSessionThread;
  let clients: SessionWorkerClient[];

  before(() => {
    paths = writeScaleModels(tempDir('shared-thread'));
  });

  async function open(options: { runTimeoutMs?: () => number } = {}): Promise<void> {
    host = new SharedSessionThread();
    clients = FACTORS.map((f) => new SessionWorkerClient(spec(f, paths.get(f)!), { shared: host, ...options }));
    await within(Promise.all(clients.map((c) => c.start())), 20_000, 'the sessions opening');
  }

  afterEach(async () => {
    await Promise.all(clients.map((c) => c.close(0)));
  });

  it('opens every session in one thread and answers each request from its own model, runs interleaved', async () => {
    await open();
    assert.equal(host.running, true);
    assert.deepEqual(host.sessions.sort(), ['scale2@1', 'scale3@1', 'scale5@1']);
    const runs = Array.from({ length: 30 }, (_, i) => expectRight(clients[i % 3]!, FACTORS[i % 3]!, i));
    await Promise.all(runs);
    for (const c of clients) {
      assert.equal(c.runs, 10);
      assert.deepEqual([c.status(0).shared, c.status(0).isolation, c.status(0).state], [true, 'thread', 'serving']);
    }
  });

  it('a crash of the thread fails only the runs in flight on it, saying so, and restarts every model in one new thread', async () => {
    await open();
    // Runs queue behind a block, so each model has one in flight when the thread dies.
    clients[0]!.testOnlyBlock(300);
    const inFlight = clients.map((c, i) => c.run(row(i)));
    await clients[1]!.kill();
    const settled = await within(Promise.allSettled(inFlight), 10_000, 'the runs in flight');
    for (const [i, s] of settled.entries()) {
      assert.equal(s.status, 'rejected', `${clients[i]!.spec.label}'s run in flight fails`);
      const err = (s as PromiseRejectedResult).reason as NucleusError;
      assert.ok(err instanceof NucleusError);
      assert.deepEqual([err.status, err.code], [503, 'worker_exited']);
      assert.match(err.message, new RegExp(`scale${FACTORS[i]}@1 stopped .*shares with other models.* retry`));
    }
    // Each model restarts; all of them in one new thread, and each answers right again.
    for (const [i, c] of clients.entries()) await expectRight(c, FACTORS[i]!, 10 + i);
    for (const c of clients) assert.equal(c.restarts, 1);
    assert.deepEqual(host.sessions.sort(), ['scale2@1', 'scale3@1', 'scale5@1']);
  });

  it('a run that hangs gives the thread up: that model answers worker_hung, the others worker_exited, and all serve again', async () => {
    await open({ runTimeoutMs: () => 400 });
    // The block stands in for a run stuck in native code; the run sent after it cannot finish in time.
    clients[0]!.testOnlyBlock(2000);
    const hung = clients[0]!.run(row(1));
    await new Promise((r) => setTimeout(r, 50));
    const sibling = clients[2]!.run(row(2));
    const [h, s] = await within(Promise.allSettled([hung, sibling]), 10_000, 'the runs on the hung thread');
    assert.equal(h.status, 'rejected');
    assert.equal(((h as PromiseRejectedResult).reason as NucleusError).code, 'worker_hung');
    assert.equal(s.status, 'rejected');
    const err = (s as PromiseRejectedResult).reason as NucleusError;
    assert.deepEqual([err.status, err.code], [503, 'worker_exited']);
    assert.match(err.message, /given up: scale2@1 hung/);
    // The hung thread is still blocked: the models answer from a new one, long before the block ends.
    for (const [i, c] of clients.entries()) await expectRight(c, FACTORS[i]!, 20 + i);
  });

  it('unloading one model leaves the others serving; the thread ends with the last session, and the next model starts one', async () => {
    await open();
    await clients[1]!.close(1000);
    assert.deepEqual(host.sessions.sort(), ['scale2@1', 'scale5@1']);
    await expectRight(clients[0]!, 2, 7);
    await expectRight(clients[2]!, 5, 7);
    await assert.rejects(clients[1]!.run(row(1)), (e: NucleusError) => e.code === 'model_unloading');
    await clients[0]!.close(1000);
    await clients[2]!.close(1000);
    assert.equal(host.running, false, 'no session left: the thread ended');
    const again = new SessionWorkerClient(spec(3, paths.get(3)!), { shared: host });
    clients.push(again);
    await again.start();
    assert.equal(host.running, true);
    await expectRight(again, 3, 9);
  });

  it('an unloadable model fails its own open and leaves the thread serving the others', async () => {
    await open();
    const dir = tempDir('shared-bad');
    writeFileSync(join(dir, 'model.onnx'), 'not an onnx model');
    const bad = new SessionWorkerClient(spec(7, join(dir, 'model.onnx')), { shared: host });
    clients.push(bad);
    await assert.rejects(bad.start(), (err: NucleusError) => /could not open scale7@1/.test(err.message));
    for (const [i, c] of clients.slice(0, 3).entries()) await expectRight(c, FACTORS[i]!, 30 + i);
    assert.equal(host.sessions.length, 3);
  });
});

describe('shared session thread: the rule the engine follows', () => {
  let kernel: Nucleus | undefined;
  let paths: Map<number, string>;
  before(() => {
    paths = writeScaleModels(tempDir('shared-rule'));
  });
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  const sharedOf = (k: Nucleus, name: string): boolean[] =>
    k.inference.get(name).status!.replicas!.map((r) => r.shared === true);

  it('models under workers.shareBelowBytes share; models[].worker overrides it; several replicas or a process each get their own', async () => {
    kernel = await startKernel({
      models: [
        { name: 'a', path: paths.get(2) },
        { name: 'b', path: paths.get(3) },
        { name: 'own', path: paths.get(5), worker: 'own' },
        { name: 'two', path: paths.get(5), workers: 2 },
        { name: 'proc', path: paths.get(5), isolation: 'process' },
      ],
    });
    assert.deepEqual(sharedOf(kernel, 'a'), [true]);
    assert.deepEqual(sharedOf(kernel, 'b'), [true]);
    assert.deepEqual(sharedOf(kernel, 'own'), [false]);
    assert.deepEqual(sharedOf(kernel, 'two'), [false, false]);
    assert.deepEqual(sharedOf(kernel, 'proc'), [false]);
    // Each answers from its own model, concurrently.
    const k = kernel;
    const results = await Promise.all(
      ['a', 'b', 'own', 'a', 'b'].map((model, i) => k.inference.infer({ model, inputs: row(i) })),
    );
    for (const [i, [model, factor]] of (
      [
        ['a', 2],
        ['b', 3],
        ['own', 5],
        ['a', 2],
        ['b', 3],
      ] as const
    ).entries())
      assert.deepEqual(Array.from(results[i]!.outputs.y!.data as Float32Array), answer(i, factor), model);
    // Unloading one shared model leaves the other serving from the thread.
    await k.inference.unload('a');
    const b = await k.inference.infer({ model: 'b', inputs: row(4) });
    assert.deepEqual(Array.from(b.outputs.y!.data as Float32Array), answer(4, 3));
  });

  it('per-model events and cancellation work as for a thread of its own, while another model holds the thread', async () => {
    kernel = await startKernel({
      models: [
        { name: 'a', path: paths.get(2) },
        { name: 'b', path: paths.get(3) },
      ],
    });
    const k = kernel;
    const ended: Array<{ model: string; ok: boolean; errorCode?: string }> = [];
    k.events.on('inference.end', (e) =>
      ended.push({ model: e.model, ok: e.ok, ...(e.errorCode && { errorCode: e.errorCode }) }),
    );
    // b's worker is the shared thread: blocked, a's run waits there, and a's next request waits in a's queue.
    k.inference.loadedModel('b').pool.workers[0]!.testOnlyBlock(1500);
    const first = k.inference.infer({ model: 'a', inputs: row(1) });
    await new Promise((r) => setTimeout(r, 50));
    const controller = new AbortController();
    const second = k.inference.infer({ model: 'a', inputs: row(2), signal: controller.signal });
    const third = k.inference.infer({ model: 'b', inputs: row(3) });
    await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await assert.rejects(second, (e: NucleusError) => e.status === 499 && e.code === 'request_cancelled');
    const [r1, r3] = await within(Promise.all([first, third]), 10_000, 'the runs after the block');
    assert.deepEqual(Array.from(r1.outputs.y!.data as Float32Array), answer(1, 2));
    assert.deepEqual(Array.from(r3.outputs.y!.data as Float32Array), answer(3, 3));
    const of = (model: string) => ended.filter((e) => e.model === model);
    assert.deepEqual(
      of('a')
        .map((e) => [e.ok, e.errorCode])
        .sort(),
      [
        [false, 'request_cancelled'],
        [true, undefined],
      ],
    );
    assert.deepEqual(
      of('b').map((e) => e.ok),
      [true],
    );
    assert.equal(k.inference.get('a').status!.requests, 2);
    assert.equal(k.inference.get('b').status!.requests, 1);
  });

  it('a shared model swaps while both it and its neighbour serve, with no request failing; a broken swap leaves both serving', async () => {
    kernel = await startKernel({
      models: [
        { name: 'a', path: paths.get(2) },
        { name: 'b', path: paths.get(3) },
      ],
    });
    const k = kernel;
    const failures: string[] = [];
    const seen = new Set<number>();
    let running = true;
    // Bounded: each client stops when told to, or after 2000 requests.
    const client = async (model: string, check: (y: number[], v: number) => number | undefined): Promise<void> => {
      for (let i = 0; i < 2000 && running; i++) {
        try {
          const r = await k.inference.infer({ model, inputs: row(i) });
          const factor = check(Array.from(r.outputs.y!.data as Float32Array), i);
          if (factor === undefined) failures.push(`${model}: wrong answer for ${i}`);
          else if (model === 'a') seen.add(factor);
        } catch (err) {
          failures.push(`${model}: ${(err as Error).message}`);
        }
      }
    };
    const factorOf = (y: number[], v: number): number | undefined =>
      [2, 5].find((f) => JSON.stringify(y) === JSON.stringify(answer(v, f)));
    const clients = [
      client('a', factorOf),
      client('a', factorOf),
      client('b', (y, v) => (JSON.stringify(y) === JSON.stringify(answer(v, 3)) ? 3 : undefined)),
    ];
    await new Promise((r) => setTimeout(r, 100));
    const swapped = await k.inference.swap('a', { path: paths.get(5)! });
    assert.equal(swapped.defaultVersion, '2');
    const dir = tempDir('shared-broken');
    writeFileSync(join(dir, 'model.onnx'), 'not an onnx model');
    await assert.rejects(k.inference.swap('a', { path: join(dir, 'model.onnx') }), (e: NucleusError) => {
      assert.equal(e.code, 'model_load_failed');
      return true;
    });
    await new Promise((r) => setTimeout(r, 100));
    running = false;
    await within(Promise.all(clients), 30_000, 'the clients');
    assert.deepEqual(failures, []);
    assert.deepEqual([...seen].sort(), [2, 5], 'answers from the old version, then the new one');
    assert.deepEqual(sharedOf(k, 'a'), [true]);
    const after = await k.inference.infer({ model: 'a', inputs: row(1) });
    assert.deepEqual(Array.from(after.outputs.y!.data as Float32Array), answer(1, 5));
  });

  it('0 (or a size below the model) gives every model a thread of its own; models[].worker: shared still shares', async () => {
    kernel = await startKernel({
      models: [
        { name: 'a', path: paths.get(2) },
        { name: 'b', path: paths.get(3), worker: 'shared' },
      ],
      'workers.shareBelowBytes': 0,
    });
    assert.deepEqual(sharedOf(kernel, 'a'), [false]);
    assert.deepEqual(sharedOf(kernel, 'b'), [true]);
    await kernel.stop();
    kernel = await startKernel({ models: [{ name: 'a', path: paths.get(2) }], 'workers.shareBelowBytes': 64 });
    assert.deepEqual(sharedOf(kernel, 'a'), [false], 'the model file is over 64 bytes');
  });
});
