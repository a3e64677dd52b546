import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NucleusEvents, RegisteredModel } from '@nucleus/sdk';
import type { TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { ORACLE_DIR, requireOracle } from '../llm-formats/llm-module.js';
import { admin, errorOf, startLifecycleKernel, streamCompletion, until } from './lifecycle-fixtures.js';

const SWAPS = 10;
const STREAM_CLIENTS = 6;
const TENSOR_CLIENTS = 10;
const PROMPT = 'the abc';
const INPUT = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] };

// The process's OS threads: each worker is one, and its ORT session has thread pools of its own, so a version whose
// workers did not exit would leave threads behind.
function threads(): number | undefined {
  if (!existsSync('/proc/self/status')) return undefined;
  return Number(/^Threads:\s+(\d+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1]);
}

// Resident memory once the garbage collector has run in the main thread and the workers have settled.
async function settledRss(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    global.gc?.();
    await new Promise((r) => setTimeout(r, 100));
  }
  return process.memoryUsage().rss;
}

interface Outcome {
  kind: 'stream' | 'tensor';
  status: number;
  ok: boolean;
  detail?: string;
}

describe('16 clients (LLM streams and tensor requests) while an LLM and a tensor model are each swapped 10 times, and once to a broken file', () => {
  let kit: TestKernel | undefined;
  let dir: string;
  const unloaded: NucleusEvents['model.unloaded'][] = [];
  const swapped: NucleusEvents['model.swapped'][] = [];
  const swapFailed: NucleusEvents['model.swapFailed'][] = [];

  before(async function () {
    if (typeof global.gc !== 'function') this.skip();
    dir = tempDir('swap-stress');
    writeTestLlamaGguf(join(dir, 'llm-a.gguf'));
    writeTestLlamaGguf(join(dir, 'llm-b.gguf'));
    writeFileSync(join(dir, 'broken.gguf'), 'GGUF but not really a GGUF file');
    writeFileSync(
      join(dir, 'broken.onnx'),
      Uint8Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff),
    );
    kit = await startLifecycleKernel({ 'plugin.model-lifecycle.drainTimeoutMs': 20_000 });
    kit.kernel.events.on('model.unloaded', (e) => unloaded.push(e));
    kit.kernel.events.on('model.swapped', (e) => swapped.push(e));
    kit.kernel.events.on('model.swapFailed', (e) => swapFailed.push(e));
  });
  after(async () => {
    await kit?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('fails no request, answers 422 to the broken swaps, disposes of each old version and its workers, and comes back to the memory it started from', async function () {
    this.timeout(240_000);
    const k = kit!;
    const list = ((await admin(k, '/admin/models')).body as { models: RegisteredModel[] }).models;
    const mlp = list.find((m) => m.name === 'mlp-classifier')!.versions[0]!.source!;
    const mlpFile = statSync(mlp).isDirectory() ? join(mlp, 'model.onnx') : mlp;
    const tensorSources = [join(dir, 'clf-a.onnx'), join(dir, 'clf-b.onnx')];
    for (const s of tensorSources) copyFileSync(mlpFile, s);
    const llmSources = [join(dir, 'llm-a.gguf'), join(dir, 'llm-b.gguf')];
    for (const [name, source] of [
      ['story', llmSources[0]],
      ['clf', tensorSources[0]],
    ] as const) {
      const res = await admin(k, '/admin/models', { body: { name, source } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }

    const outcomes: Outcome[] = [];
    let running = false;
    const stream = async (): Promise<Outcome> => {
      const r = await streamCompletion(k, { model: 'story', prompt: PROMPT, max_tokens: 12 });
      return { kind: 'stream', status: r.status, ok: r.status === 200 && r.complete, detail: JSON.stringify(r.error) };
    };
    const tensor = async (): Promise<Outcome> => {
      const r = await admin(k, '/v2/models/clf/infer', { body: INPUT });
      return { kind: 'tensor', status: r.status, ok: r.status === 200, detail: JSON.stringify(r.body).slice(0, 300) };
    };
    // Bounded: each client stops when told to, or after 5000 requests at most.
    const clients = (): Promise<void>[] => {
      running = true;
      const loop = async (call: () => Promise<Outcome>): Promise<void> => {
        for (let i = 0; i < 5000 && running; i++) outcomes.push(await call());
      };
      return [
        ...Array.from({ length: STREAM_CLIENTS }, () => loop(stream)),
        ...Array.from({ length: TENSOR_CLIENTS }, () => loop(tensor)),
      ];
    };
    const swap = async (name: string, source: string): Promise<void> => {
      const before = outcomes.length;
      const res = await admin(k, `/admin/models/${name}/swap`, { body: { source } });
      assert.equal(res.status, 200, `swap of ${name}: ${JSON.stringify(res.body)}`);
      // Some requests ran against each version.
      await until(() => outcomes.length >= before + 8, 'requests after a swap', 60_000);
    };

    // A first round: each model swapped once under load, so that what a swap allocates once (caches, allocator arenas,
    // the built graph of each file) is there before the baseline is taken.
    let round = clients();
    await swap('story', llmSources[1]!);
    await swap('clf', tensorSources[1]!);
    running = false;
    await Promise.all(round);
    const baseRss = await settledRss();
    const baseThreads = threads();

    round = clients();
    for (let i = 0; i < SWAPS; i++) {
      await swap('story', llmSources[i % 2]!);
      await swap('clf', tensorSources[i % 2]!);
      if (i === SWAPS / 2) {
        // A swap to a broken file in the middle: 422 with the reason, and the old version keeps serving.
        for (const [name, source] of [
          ['story', join(dir, 'broken.gguf')],
          ['clf', join(dir, 'broken.onnx')],
        ] as const) {
          const before = outcomes.length;
          const res = await admin(k, `/admin/models/${name}/swap`, { body: { source } });
          assert.deepEqual([res.status, errorOf(res).code], [422, 'model_load_failed'], JSON.stringify(res.body));
          assert.match(errorOf(res).message, /broken\.(gguf|onnx).*keeps serving/);
          await until(() => outcomes.length >= before + 16, 'requests after a failed swap', 60_000);
        }
      }
    }
    running = false;
    await Promise.all(round);

    const failed = outcomes.filter((o) => !o.ok);
    assert.deepEqual(failed, [], 'no request failed');
    assert.ok(outcomes.filter((o) => o.kind === 'stream').length >= SWAPS * 2, 'streams ran throughout');
    assert.ok(outcomes.filter((o) => o.kind === 'tensor').length >= SWAPS * 2, 'tensor requests ran throughout');

    // Each swap's old version closed (its workers ended) and only the newest serves.
    for (const name of ['story', 'clf']) {
      const mine = swapped.filter((e) => e.model === name);
      assert.equal(mine.length, SWAPS + 1, `${name} swapped ${SWAPS + 1} times`);
      const closed = new Set(unloaded.filter((e) => e.model === name).map((e) => e.version));
      for (const e of mine) assert.ok(closed.has(e.fromVersion), `${name} version ${e.fromVersion} was unloaded`);
      const model = (await admin(k, '/admin/models')).body as { models: RegisteredModel[] };
      const now = model.models.find((m) => m.name === name)!;
      assert.deepEqual(
        [now.state, now.defaultVersion, now.versions.length],
        ['ready', mine.at(-1)!.toVersion, 1],
        JSON.stringify(now),
      );
    }
    const endRss = await settledRss();
    const endThreads = threads();
    if (baseThreads !== undefined && endThreads !== undefined)
      assert.ok(
        endThreads <= baseThreads + 2,
        `threads back to ${baseThreads} (now ${endThreads}): old workers exited`,
      );
    const mb = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MB`;
    assert.ok(
      Math.abs(endRss - baseRss) <= baseRss * 0.1,
      `resident memory ${mb(endRss)} within 10% of ${mb(baseRss)} after ${SWAPS} swaps of each model`,
    );

    assert.deepEqual(
      swapFailed.map((e) => [e.model, e.rolledBack]),
      [
        ['story', true],
        ['clf', true],
      ],
    );

    // Both still answer.
    assert.equal((await tensor()).status, 200);
    assert.ok((await stream()).ok);
    const gone = await admin(k, `/v2/models/clf/versions/${swapped.find((e) => e.model === 'clf')!.fromVersion}`);
    assert.equal(gone.status, 404, errorOf(gone).message);
  });

  it('ends a stream longer than the drain timeout of a swap with a model_unloading error event, not a hang', async function () {
    requireOracle(this);
    const k = kit!;
    // llama3-tiny (2048 tokens of context, a 128k vocabulary) streams 1,500 tokens for seconds: long enough for
    // the new version, its graph already built, to open beside it and switch over while the stream runs.
    const source = join(ORACLE_DIR, 'llama3-tiny-F16.gguf');
    assert.equal((await admin(k, '/admin/models', { body: { name: 'long', source } })).status, 201);
    // Bounded: a stream may still end before its swap switches over on a fast machine; up to 4 tries.
    const copy = join(dir, 'llama3-copy.gguf');
    copyFileSync(source, copy);
    const sources = [copy, source];
    let cut: Awaited<ReturnType<typeof streamCompletion>> | undefined;
    const refused: Awaited<ReturnType<typeof streamCompletion>>[] = [];
    for (let attempt = 0; attempt < 4 && !cut; attempt++) {
      let swapping: Promise<{ status: number; body: unknown }> | undefined;
      const stream = await streamCompletion(
        k,
        { model: 'long', prompt: PROMPT, max_tokens: 1500, ignore_eos: true },
        () => {
          swapping = admin(k, '/admin/models/long/swap', { body: { source: sources[attempt % 2], drainTimeoutMs: 0 } });
        },
      );
      // A stream refused before its first chunk (the machine too busy to admit it) leaves nothing to swap under.
      if (!swapping) {
        refused.push(stream);
        continue;
      }
      const res = await swapping;
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.equal(stream.status, 200);
      if (!stream.complete) cut = stream;
    }
    assert.ok(cut, `a stream was still running when its swap switched over (refused: ${JSON.stringify(refused)})`);
    assert.equal(cut.error?.code, 'model_unloading', JSON.stringify(cut));
    assert.match(cut.error!.message, /long/);
    // New requests go to the new version.
    assert.ok((await streamCompletion(k, { model: 'long', prompt: PROMPT, max_tokens: 4 })).complete);
  });
});
