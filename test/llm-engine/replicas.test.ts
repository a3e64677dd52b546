import { strict as assert } from 'node:assert';
import type { GenerateRequest, NucleusError, ReplicaRouter, WorkerReplicaStatus } from '@nucleus/sdk';
import { LRU_POLICY } from '@nucleus/plugin-cache-lru';
import { leastLoaded, prefixAffinity } from '@nucleus/plugin-scheduler';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { within } from '../engine/engine-fixtures.js';
import { generateAll, ofType, testEngine, viewOf, type Generated } from './engine-helpers.js';

const routers = (...values: ReplicaRouter[]) => viewOf('replicaRouter', 'scheduler', ...values);

const PROMPTS = [
  'Once upon a time',
  'The little dog',
  'Tom and Lily went to the park',
  'One day, a bird',
  'The sun was',
  'Sam had a red ball',
];

const greedy = (prompt: string, maxTokens = 24): GenerateRequest => ({
  model: 'tiny-llama',
  prompt,
  maxTokens,
  temperature: 0,
  ignoreEos: true,
});

const replicasOf = (engine: GenerationEngine): WorkerReplicaStatus[] => engine.get('tiny-llama').workers ?? [];

async function until(what: string, ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('LLM replicas (tiny Llama, real ORT)', () => {
  let engines: GenerationEngine[] = [];
  const started = async (...args: Parameters<typeof testEngine>) => {
    const made = testEngine(...args);
    engines.push(made.engine);
    await made.engine.start();
    return made;
  };
  afterEach(async () => {
    await Promise.all(engines.map((e) => e.stop()));
    engines = [];
  });

  // Each prompt alone on one replica: what every replica must produce for it, whatever runs beside it.
  let solo: Map<string, Generated>;
  before(async function () {
    this.timeout(120_000);
    const { engine } = testEngine();
    try {
      await engine.start();
      solo = new Map();
      for (const p of PROMPTS) solo.set(p, await generateAll(engine, greedy(p)));
    } finally {
      await engine.stop();
    }
  });

  it('two replicas serve concurrent greedy requests: each output equals the prompt alone, and both replicas serve', async () => {
    const { engine, emitted } = await started(
      { 'workers.perModel': 2, 'workers.llmRouting': 'least-loaded' },
      { replicaRouters: routers(leastLoaded) },
    );
    // The built-in model opens on its first request: these twelve arrive while it loads, and are routed together.
    const outputs = await within(
      Promise.all([...PROMPTS, ...PROMPTS].map((p) => generateAll(engine, greedy(p)))),
      60_000,
      'concurrent requests',
    );
    const info = engine.get('tiny-llama');
    assert.deepEqual(
      info.workers!.map((w) => [w.id, w.state, w.isolation]),
      [
        [0, 'serving', 'thread'],
        [1, 'serving', 'thread'],
      ],
    );
    assert.equal(info.worker!.id, 0, 'worker is the first replica');
    for (const [i, out] of outputs.entries()) {
      const prompt = PROMPTS[i % PROMPTS.length]!;
      assert.deepEqual(out.tokens, solo.get(prompt)!.tokens, `"${prompt}" (request ${i}) as alone`);
      assert.equal(out.finishes[0]!.finishReason, 'length');
    }
    const runs = replicasOf(engine).map((w) => w.runs);
    assert.equal(
      runs.reduce((a, b) => a + b, 0),
      12,
    );
    // Routed together, least-loaded sees each request the replica took before it: an even split.
    assert.deepEqual(runs, [6, 6], 'both replicas served');
    assert.deepEqual(
      ofType(emitted, 'model.loaded').map((e) => e.model),
      ['tiny-llama'],
      'one model, loaded once',
    );
    assert.deepEqual([engine.get('tiny-llama').running, engine.get('tiny-llama').waiting], [0, 0]);
  });

  it('resizes 1 → 3 → 1 while clients stream: new replicas take requests, retired ones finish theirs, none is dropped', async function () {
    this.timeout(120_000);
    const { engine, setConfig } = await started(
      { 'workers.perModel': 1, 'workers.llmRouting': 'least-loaded' },
      { replicaRouters: routers(leastLoaded) },
    );
    let stop = false;
    const results: { prompt: string; out?: Generated; error?: unknown }[] = [];
    // Four clients, each streaming one request after another until told to stop.
    const clients = Array.from({ length: 4 }, async (_, c) => {
      for (let i = 0; !stop; i++) {
        const prompt = PROMPTS[(c + i) % PROMPTS.length]!;
        try {
          results.push({ prompt, out: await generateAll(engine, greedy(prompt, 64)) });
        } catch (error) {
          results.push({ prompt, error });
        }
      }
    });
    try {
      await until('the first requests finished', () => results.length >= 4);
      assert.equal(replicasOf(engine).length, 1);
      setConfig('workers.perModel', 3);
      await until(
        'three replicas serve',
        () => replicasOf(engine).filter((w) => w.state === 'serving' && !w.retiring).length === 3,
      );
      await until('the new replicas served requests', () => replicasOf(engine).every((w) => w.runs >= 2));
      const retiring = replicasOf(engine).filter((w) => w.id !== 0);
      assert.ok(retiring.every((w) => w.runs >= 2));
      setConfig('workers.perModel', 1);
      // Retired at once from routing; each ends once its generations have finished.
      await until(
        'the retired replicas still run generations',
        () => replicasOf(engine).some((w) => w.retiring === true && w.pending > 0),
        5_000,
      );
      await until('the extra replicas are gone', () => replicasOf(engine).length === 1);
      assert.equal(replicasOf(engine)[0]!.id, 0);
      const before = results.length;
      await until('requests go on after the shrink', () => results.length >= before + 4);
    } finally {
      stop = true;
      await within(Promise.all(clients), 60_000, 'the clients');
    }
    const failed = results.filter((r) => r.error !== undefined).map((r) => (r.error as NucleusError).message);
    assert.deepEqual(failed, [], 'no request was dropped');
    for (const r of results) {
      assert.equal(r.out!.tokens[0]!.length, 64);
      assert.deepEqual(r.out!.tokens[0]!.slice(0, 24), solo.get(r.prompt)!.tokens[0], `"${r.prompt}" as alone`);
    }
    assert.ok(results.length >= 12);
    assert.deepEqual([engine.get('tiny-llama').running, engine.get('tiny-llama').waiting], [0, 0]);
  });

  for (const isolation of ['thread', 'process'] as const) {
    it(`a killed replica (${isolation}): the requests waiting in it without a token finish on the other replica, the streaming one fails with 503`, async function () {
      this.timeout(120_000);
      // One sequence per step, so the requests behind the first wait inside the replica without a token; prefix
      // affinity sends the four requests (one prompt, no conversation) to one replica, within its load bound.
      const { engine } = await started(
        { 'workers.perModel': 2, 'workers.isolation': isolation, 'scheduler.maxBatchSize': 1 },
        { replicaRouters: routers(prefixAffinity) },
      );
      const prompt = PROMPTS[0]!;
      let firstToken!: () => void;
      const streaming = new Promise<void>((r) => (firstToken = r));
      const long = generateAll(engine, greedy(prompt, 200), undefined, (e) => e.type === 'token' && firstToken()).then(
        (out) => ({ out }),
        (error: NucleusError) => ({ error }),
      );
      await streaming;
      const waiting = [1, 2, 3].map(() => generateAll(engine, greedy(prompt)));
      await until('all four are in one replica', () => replicasOf(engine).some((w) => w.pending === 4));
      const victim = replicasOf(engine).find((w) => w.pending === 4)!;
      const other = replicasOf(engine).find((w) => w.id !== victim.id)!;
      assert.equal(other.pending, 0);
      await engine.killWorker('tiny-llama', victim.id);
      const outs = await within(Promise.all(waiting), 60_000, 'the requests of the killed replica');
      for (const out of outs)
        assert.deepEqual(out.tokens, solo.get(prompt)!.tokens, 'run from the start on the other replica');
      const ended = await within(long, 60_000, 'the streaming request');
      assert.ok('error' in ended, 'the request that had streamed tokens cannot be continued');
      const error = (ended as { error: NucleusError }).error;
      assert.equal(error.status, 503);
      assert.equal(error.code, 'worker_exited');
      const after = new Map(replicasOf(engine).map((w) => [w.id, w]));
      assert.equal(after.get(other.id)!.runs, other.runs + 3, 'the other replica ran the three');
      assert.equal(after.get(other.id)!.restarts, 0);
      assert.equal(after.get(victim.id)!.restarts, 1);
      await until('the killed replica serves again', () => replicasOf(engine).every((w) => w.state === 'serving'));
      if (isolation === 'process') {
        const pids = replicasOf(engine).map((w) => w.pid);
        assert.ok(
          pids.every((pid) => pid !== undefined && pid !== process.pid) && new Set(pids).size === 2,
          'a process each',
        );
        assert.ok((after.get(other.id)!.rssBytes ?? 0) > 10_000_000, 'the replica process reports its memory');
      }
      const next = await generateAll(engine, greedy(prompt));
      assert.deepEqual(next.tokens, solo.get(prompt)!.tokens);
      assert.deepEqual([engine.get('tiny-llama').running, engine.get('tiny-llama').waiting], [0, 0]);
    });
  }

  it('a killed replica (thread): a buffered request that had produced tokens runs again from the start on the other replica, its partial output dropped', async function () {
    this.timeout(120_000);
    const { engine, events } = await started({ 'workers.perModel': 2, 'workers.isolation': 'thread' });
    const prompt = PROMPTS[1]!;
    let victim: WorkerReplicaStatus | undefined;
    events.on('engine.steps', (e) => {
      if (victim || e.phase !== 'decode') return;
      // Tokens have been made and nobody has read them: the reader of a buffered request gets its events at its end.
      victim = replicasOf(engine).find((w) => w.pending === 1);
      if (victim) void engine.killWorker('tiny-llama', victim.id);
    });
    let read = 0;
    const out = await within(
      generateAll(engine, { ...greedy(prompt, 200), buffered: true }, undefined, () => read++),
      60_000,
      'the buffered request',
    );
    assert.ok(victim, 'the replica running it was killed');
    assert.equal(out.tokens[0]!.length, 200, 'only the second run is read');
    assert.deepEqual(out.tokens[0]!.slice(0, 24), solo.get(prompt)!.tokens[0], 'run from the start');
    assert.equal(out.usage!.completionTokens, 200);
    assert.equal(out.finishes[0]!.finishReason, 'length');
    assert.equal(read, 202, '200 tokens, a finish and done');
    const after = new Map(replicasOf(engine).map((w) => [w.id, w]));
    assert.equal(after.get(victim.id)!.restarts, 1);
    const other = [...after.values()].find((w) => w.id !== victim!.id)!;
    assert.equal(other.runs, 1, 'the other replica ran it');
  });

  it('prefix affinity: each conversation stays on one replica, whose prefix cache serves its second turn; conversations spread over both', async function () {
    this.timeout(120_000);
    const { engine, emitted, setConfig } = await started(
      { 'workers.perModel': 2, 'cache.prefix.maxBytes': 16 * 1024 * 1024 },
      {
        replicaRouters: routers(prefixAffinity, leastLoaded),
        cachePolicies: viewOf('cachePolicy', 'cache-lru', LRU_POLICY),
      },
    );
    const served = (before: WorkerReplicaStatus[]): number => {
      const now = replicasOf(engine);
      const moved = now.filter((w, i) => w.runs > before[i]!.runs);
      assert.equal(moved.length, 1);
      return moved[0]!.id;
    };
    // The built-in model opens on its first request.
    await generateAll(engine, greedy('Hello'));
    const replicaOf = new Map<string, number>();
    for (const [i, withId] of [true, true, true, false, false, false].entries()) {
      const conversationId = `talk-${i}`;
      const user = `${PROMPTS[i]} in the forest with a kind old owl and a small fox who liked to sing.`;
      const turn1 = {
        model: 'tiny-llama',
        messages: [{ role: 'user', content: user }],
        maxTokens: 16,
        temperature: 0,
        ignoreEos: true,
        ...(withId && { conversationId }),
      };
      let before = replicasOf(engine);
      const first = await generateAll(engine, turn1);
      const at = served(before);
      replicaOf.set(conversationId, at);
      const turn2 = {
        ...turn1,
        messages: [
          ...turn1.messages,
          { role: 'assistant', content: first.texts[0]! },
          { role: 'user', content: 'And then?' },
        ],
      };
      before = replicasOf(engine);
      const second = await generateAll(engine, turn2);
      assert.equal(
        served(before),
        at,
        `${conversationId} (${withId ? 'conversation id' : 'same first message'}): the second turn on the replica of the first`,
      );
      assert.ok(
        (second.usage!.cachedPromptTokens ?? 0) >= 16,
        `${conversationId}: the second turn starts from the first's cached blocks (${second.usage!.cachedPromptTokens})`,
      );
    }
    assert.equal(
      new Set(replicaOf.values()).size,
      2,
      `conversations spread over both replicas: ${JSON.stringify([...replicaOf])}`,
    );
    // cache.stats: the two caches together, each of its own size; the counters do not go down when one retires.
    const both = ofType(emitted, 'cache.stats').at(-1)!;
    assert.equal(both.capacityBytes, 2 * 16 * 1024 * 1024);
    assert.ok(both.hits >= 6 * 2 && both.misses > 0 && both.entries! > 0, JSON.stringify(both));
    setConfig('workers.perModel', 1);
    await until('one replica is left', () => replicasOf(engine).length === 1);
    await generateAll(engine, greedy('A new story begins here'));
    const one = ofType(emitted, 'cache.stats').at(-1)!;
    assert.equal(one.capacityBytes, 16 * 1024 * 1024);
    assert.ok(
      one.hits >= both.hits && one.misses > both.misses,
      `counters only grow: ${JSON.stringify(both)} then ${JSON.stringify(one)}`,
    );
  });
});
