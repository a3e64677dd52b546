import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { GenerateRequest, NucleusError } from '@nucleus/sdk';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import type { GenerationThreadSpec } from '@nucleus/core/internal/engine/llm/generation/generation-messages';
import {
  GenerationWorkerClient,
  sharedGenerationThread,
  type SharedGenerationThread,
} from '@nucleus/core/internal/engine/llm/generation/generation-worker-client';
import { within } from '../engine/engine-fixtures.js';
import { builtinModels, TEST_MODEL_CACHE } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { generateAll, testEngine, type Generated } from './engine-helpers.js';

// Small LLM and embedding models share one generation thread (`workers.shareBelowBytes`), as small tensor models share
// theirs: each model's loop takes its turn there, a crash of the thread fails only the requests in flight on it and
// restarts its models together, and a model that must run apart (`models[].worker: own`, replicas, a process) does.

const F32 = join(STORIES_DIR, 'stories260K.gguf');
const Q8 = join(STORIES_DIR, 'stories260K-q8_0.gguf');
const PROMPTS = ['Once upon a time', 'Lily and Ben went to the park.', 'The cat sat on the mat. The cat'];

const greedy = (model: string, prompt: string, maxTokens = 48): GenerateRequest => ({
  model,
  prompt,
  maxTokens,
  temperature: 0,
  ignoreEos: true,
});

const sharedOf = (engine: GenerationEngine, name: string): boolean[] =>
  (engine.get(name).workers ?? []).map((w) => w.shared === true);

async function until(what: string, ok: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('shared generation thread: small LLMs and embedding models in one worker thread', () => {
  let engine: GenerationEngine | undefined;

  beforeEach(function () {
    requireStories(this);
  });
  afterEach(async () => {
    await engine?.stop();
    engine = undefined;
  });

  async function started(config: Record<string, unknown>): Promise<GenerationEngine> {
    ({ engine } = testEngine(config));
    await engine.start();
    return engine;
  }

  // Each prompt of each model generated alone, one request at a time, in a thread of the model's own.
  async function alone(models: string[]): Promise<Map<string, Generated>> {
    const solo = await started({
      models: [
        { name: 'f32', path: F32 },
        { name: 'q8', path: Q8 },
      ],
      'workers.shareBelowBytes': 0,
    });
    const out = new Map<string, Generated>();
    for (const model of models)
      for (const prompt of PROMPTS) out.set(`${model}:${prompt}`, await generateAll(solo, greedy(model, prompt)));
    assert.deepEqual(sharedOf(solo, 'f32'), [false]);
    assert.deepEqual(sharedOf(solo, 'q8'), [false]);
    await solo.stop();
    engine = undefined;
    return out;
  }

  it('the built-in models share one thread, marked shared, and each answers from its own model', async () => {
    const e = await started({});
    const [stories, llama, embedded] = await Promise.all([
      generateAll(e, greedy('stories260K', PROMPTS[0]!, 16)),
      generateAll(e, greedy('tiny-llama', PROMPTS[0]!, 16)),
      e.embed({ model: 'bert-tiny', input: ['hello'] }),
    ]);
    assert.equal(stories.tokens[0]!.length, 16);
    assert.equal(llama.tokens[0]!.length, 16);
    assert.notDeepEqual(stories.tokens, llama.tokens);
    assert.equal(embedded.embeddings[0]!.length, e.get('bert-tiny').dimensions);
    for (const name of ['stories260K', 'tiny-llama', 'bert-tiny']) assert.deepEqual(sharedOf(e, name), [true], name);
  });

  it('two LLMs generating at once in the shared thread give the greedy outputs each gives alone', async function () {
    this.timeout(180_000);
    const solo = await alone(['f32', 'q8']);
    const e = await started({
      models: [
        { name: 'f32', path: F32 },
        { name: 'q8', path: Q8 },
      ],
    });
    // Every prompt of both models at once, twice over: both loops run batches in the one thread, turn by turn.
    const runs = [...PROMPTS, ...PROMPTS].flatMap((prompt) =>
      ['f32', 'q8'].map(async (model) => ({ model, prompt, out: await generateAll(e, greedy(model, prompt)) })),
    );
    // Seen while they run: both models with sequences in their loops at once.
    let both = false;
    const watch = setInterval(() => {
      both ||= e.get('f32').running > 0 && e.get('q8').running > 0;
    }, 2);
    const results = await within(Promise.all(runs), 120_000, 'the generations').finally(() => clearInterval(watch));
    assert.ok(both, 'the two models had sequences running at the same time');
    for (const { model, prompt, out } of results)
      assert.deepEqual(out.tokens, solo.get(`${model}:${prompt}`)!.tokens, `${model} on "${prompt}"`);
    assert.deepEqual(sharedOf(e, 'f32'), [true]);
    assert.deepEqual(sharedOf(e, 'q8'), [true]);
  });

  it('a crash of the thread fails only its requests in flight, of each of its models, saying so; a model of its own goes on, and the shared ones restart', async function () {
    this.timeout(180_000);
    const solo = await alone(['f32']);
    const e = await started({
      models: [
        { name: 'f32', path: F32 },
        { name: 'q8', path: Q8 },
        { name: 'own', path: F32, worker: 'own' },
      ],
    });
    assert.deepEqual(
      ['f32', 'q8', 'own'].map((m) => sharedOf(e, m)),
      [[true], [true], [false]],
    );
    // A long generation streaming on each model when the thread dies.
    const tokens = new Map<string, number>();
    const streams = ['f32', 'q8', 'own'].map((model) =>
      generateAll(e, greedy(model, PROMPTS[1]!, 400), undefined, (ev) => {
        if (ev.type === 'token') tokens.set(model, (tokens.get(model) ?? 0) + 1);
      }).then(
        (out) => ({ out }),
        (error: NucleusError) => ({ error }),
      ),
    );
    await until('each model has streamed a token', () => ['f32', 'q8', 'own'].every((m) => tokens.has(m)));
    await e.killWorker('q8');
    const [f32, q8, own] = await within(Promise.all(streams), 60_000, 'the streaming requests');
    for (const [model, ended] of [
      ['f32', f32!],
      ['q8', q8!],
    ] as const) {
      assert.ok('error' in ended, `${model}: the request streaming in the shared thread cannot be continued`);
      assert.deepEqual([ended.error.status, ended.error.code], [503, 'worker_exited'], model);
      assert.match(ended.error.message, new RegExp(`running ${model} stopped .*shares with other models.* retry`));
    }
    assert.ok('out' in own!, 'the model of its own is not touched');
    assert.equal(own.out.tokens[0]!.length, 400);
    // Both shared models serve again, from one new thread, and answer as before.
    await until('the shared models serve again', () =>
      ['f32', 'q8'].every((m) => e.get(m).workers?.[0]?.state === 'serving'),
    );
    const again = await generateAll(e, greedy('f32', PROMPTS[0]!));
    assert.deepEqual(again.tokens, solo.get(`f32:${PROMPTS[0]}`)!.tokens);
    await generateAll(e, greedy('q8', PROMPTS[0]!, 4));
    assert.deepEqual(
      ['f32', 'q8', 'own'].map((m) => e.get(m).workers?.[0]?.restarts),
      [1, 1, 0],
    );
    assert.deepEqual(sharedOf(e, 'f32'), [true]);
  });

  it('several replicas, a process, or workers.shareBelowBytes 0 each run apart; models[].worker: shared still shares', async function () {
    this.timeout(120_000);
    let e = await started({
      models: [
        { name: 'two', path: F32, workers: 2 },
        { name: 'proc', path: F32, isolation: 'process' },
      ],
    });
    await Promise.all(['two', 'proc'].map((m) => generateAll(e, greedy(m, PROMPTS[0]!, 4))));
    assert.deepEqual(sharedOf(e, 'two'), [false, false]);
    assert.deepEqual(sharedOf(e, 'proc'), [false]);
    await e.stop();
    e = await started({
      models: [
        { name: 'a', path: F32 },
        { name: 'b', path: Q8, worker: 'shared' },
      ],
      'workers.shareBelowBytes': 0,
    });
    await Promise.all(['a', 'b'].map((m) => generateAll(e, greedy(m, PROMPTS[0]!, 4))));
    assert.deepEqual(sharedOf(e, 'a'), [false]);
    assert.deepEqual(sharedOf(e, 'b'), [true]);
  });
});

describe('shared generation thread: its models open, close and fail one by one', () => {
  let host: SharedGenerationThread;
  let clients: GenerationWorkerClient[] = [];

  // bert-tiny as an embedding model, under `label`, from `onnxPath` (its own graph by default).
  async function encoder(label: string, onnxPath?: string): Promise<GenerationThreadSpec> {
    const bert = builtinModels.find((m) => m.name === 'bert-tiny')!;
    return {
      label,
      onnxPath: onnxPath ?? (await bert.prepare(TEST_MODEL_CACHE)),
      role: 'encoder',
      encoder: bert.encoder!,
      backend: { name: 'cpu', requested: 'cpu', options: { executionProviders: ['cpu'] } },
      scheduler: { maxRunning: 4, maxBatchSize: 4, batchWindowMs: 0, strategy: 'fifo' },
      flushIntervalMs: 1,
    };
  }

  const embed = (client: GenerationWorkerClient, text: string) =>
    within(client.embed({ inputs: [text], normalize: true }), 10_000, `an embedding from ${client.spec.label}`);

  beforeEach(async () => {
    host = sharedGenerationThread();
    clients = await Promise.all(
      ['a', 'b'].map(async (l) => new GenerationWorkerClient(await encoder(l), { shared: host })),
    );
    await within(Promise.all(clients.map((c) => c.start())), 20_000, 'the models opening');
  });
  afterEach(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  it('an unloadable model fails its own open and leaves the thread serving the others', async () => {
    assert.deepEqual(host.sessions.sort(), ['a', 'b']);
    const dir = tempDir('shared-generation-bad');
    writeFileSync(join(dir, 'model.onnx'), 'not an onnx model');
    const bad = new GenerationWorkerClient(await encoder('bad', join(dir, 'model.onnx')), { shared: host });
    clients.push(bad);
    await assert.rejects(bad.start(), (err: NucleusError) => /bad/.test(err.message));
    const [a, b] = await Promise.all(clients.slice(0, 2).map((c) => embed(c, 'hello')));
    assert.deepEqual(Array.from(a!.vectors[0]!), Array.from(b!.vectors[0]!), 'the same graph embeds alike');
    assert.deepEqual(host.sessions.sort(), ['a', 'b']);
    assert.ok(clients.slice(0, 2).every((c) => c.status().shared === true && c.status().state === 'serving'));
  });

  it('closing one model leaves the others serving; the thread ends with the last, and the next model starts one', async () => {
    await clients[0]!.close();
    assert.deepEqual(host.sessions, ['b']);
    await embed(clients[1]!, 'still here');
    await assert.rejects(embed(clients[0]!, 'gone'), (e: NucleusError) => e.code === 'model_unloading');
    await clients[1]!.close();
    assert.equal(host.running, false, 'no model left: the thread ended');
    const again = new GenerationWorkerClient(await encoder('c'), { shared: host });
    clients.push(again);
    await again.start();
    assert.equal(host.running, true);
    await embed(again, 'a new thread');
  });
});
