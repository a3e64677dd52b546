import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { NucleusEvents, RegisteredModel } from '@nucleus/sdk';
import type { TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import {
  admin,
  errorOf,
  startLifecycleKernel,
  streamCompletion,
  until,
  type StreamOutcome,
} from './lifecycle-fixtures.js';

const PROMPT = 'Once upon a time';
const TOKENS = 24;
const CLIENTS = 8;

// Phases of the run, in order; each stream records the phase it started in and the one it ended in.
enum Phase {
  Loaded,
  Swapping,
  Swapped,
  Unloading,
  Unloaded,
}

interface Run extends StreamOutcome {
  client: number;
  started: Phase;
  ended: Phase;
}

describe('an LLM loaded, swapped to another file and unloaded through the admin API while 8 clients stream', () => {
  let kit: TestKernel | undefined;
  let dir: string | undefined;
  let newFile: string;
  const events: { type: keyof NucleusEvents; payload: unknown }[] = [];

  before(async function () {
    requireStories(this);
    dir = tempDir('hot-swap');
    // Another model altogether: the test vocabulary (281 tokens, not stories260K's 512) and random weights.
    newFile = join(dir, 'other-llama.gguf');
    writeTestLlamaGguf(newFile);
    kit = await startLifecycleKernel({ 'plugin.model-lifecycle.drainTimeoutMs': 30_000 });
    for (const type of ['model.loaded', 'model.unloaded', 'model.swapped', 'model.swapFailed'] as const) {
      kit.kernel.events.on(type, (payload) => events.push({ type, payload }));
    }
  });
  after(async () => {
    await kit?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('serves the old file until the switch and the new one after it, with zero failed requests; running streams outlive the unload', async () => {
    const k = kit!;
    const reference = readFileSync(join(STORIES_DIR, 'reference-prompt-64.txt'), 'utf8').slice(PROMPT.length);

    // What the new file answers, from a model of its own, so that "answers from the new file" is a fact, not a guess.
    assert.equal((await admin(k, '/admin/models', { body: { name: 'probe', source: newFile } })).status, 201);
    const probe = await streamCompletion(k, { model: 'probe', prompt: PROMPT, max_tokens: TOKENS });
    assert.ok(probe.complete, JSON.stringify(probe));
    assert.equal((await admin(k, '/admin/models/probe', { method: 'DELETE' })).status, 200);
    const newText = probe.text;

    const loaded = await admin(k, '/admin/models', {
      body: { name: 'story', source: join(STORIES_DIR, 'stories260K.gguf') },
    });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    const before = (loaded.body as { model: RegisteredModel }).model;
    assert.deepEqual(
      [before.kind, before.state, before.defaultVersion, before.versions[0]!.source],
      ['llm', 'ready', '1', join(STORIES_DIR, 'stories260K.gguf')],
    );
    const oldText = (await streamCompletion(k, { model: 'story', prompt: PROMPT, max_tokens: TOKENS })).text;
    assert.ok(
      reference.startsWith(oldText) && oldText.length > 40,
      `stories260K answers its reference text: ${JSON.stringify(oldText)}`,
    );
    assert.notEqual(newText, oldText);

    let phase = Phase.Loaded;
    let inFlight = 0;
    const runs: Run[] = [];
    const client = async (id: number): Promise<void> => {
      // Bounded: each client stops at the first 404 after the unload began, or after 2000 streams at most.
      for (let i = 0; i < 2000; i++) {
        const started = phase;
        inFlight++;
        const outcome = await streamCompletion(k, { model: 'story', prompt: PROMPT, max_tokens: TOKENS }).finally(
          () => inFlight--,
        );
        runs.push({ ...outcome, client: id, started, ended: phase });
        if (outcome.status === 404 && started >= Phase.Unloading) return;
        if (outcome.status !== 200) return;
      }
    };
    const clients = Array.from({ length: CLIENTS }, (_, i) => client(i));
    const done = (p: Phase) => runs.filter((r) => r.started === p && r.status === 200).length;

    await until(() => done(Phase.Loaded) >= CLIENTS, 'a stream of each client before the swap');
    phase = Phase.Swapping;
    const swap = await admin(k, '/admin/models/story/swap', { body: { source: newFile } });
    phase = Phase.Swapped;
    assert.equal(swap.status, 200, JSON.stringify(swap.body));
    const after = (swap.body as { model: RegisteredModel }).model;
    assert.deepEqual(
      [after.state, after.defaultVersion, after.versions.map((v) => v.source)],
      ['ready', '2', [newFile]],
    );

    await until(() => done(Phase.Swapped) >= CLIENTS, 'streams after the swap');
    // Unload while streams run: they finish on the old replicas; new requests get 404.
    await until(() => inFlight >= 2, 'streams in flight');
    phase = Phase.Unloading;
    const unload = await admin(k, '/admin/models/story', { method: 'DELETE' });
    phase = Phase.Unloaded;
    assert.equal(unload.status, 200, JSON.stringify(unload.body));
    await Promise.all(clients);

    const failed = runs.filter(
      (r) => !(r.status === 200 && r.complete) && !(r.status === 404 && r.started >= Phase.Unloading),
    );
    assert.deepEqual(failed, [], 'no request failed');
    for (const r of runs.filter((r) => r.status === 404)) assert.equal(r.error?.code, 'model_not_found');
    assert.equal(runs.filter((r) => r.status === 404).length, CLIENTS, 'each client got 404 once the model was gone');

    // Before the switch the old file answers; after it the new one; during it either.
    for (const r of runs.filter((r) => r.status === 200)) {
      if (r.ended < Phase.Swapping) assert.equal(r.text, oldText, `client ${r.client}, before the swap`);
      else if (r.started >= Phase.Swapped) assert.equal(r.text, newText, `client ${r.client}, after the swap`);
      else
        assert.ok(
          r.text === oldText || r.text === newText,
          `client ${r.client}, during the swap: ${JSON.stringify(r.text)}`,
        );
    }
    const straddling = runs.filter(
      (r) => r.status === 200 && r.started <= Phase.Unloading && r.ended >= Phase.Unloading,
    );
    assert.ok(straddling.length >= 1, 'streams running when the unload began finished');
    assert.ok(runs.filter((r) => r.started === Phase.Swapping).length >= 1, 'streams ran while the swap was under way');

    const swapped = events.filter((e) => e.type === 'model.swapped').map((e) => e.payload);
    assert.deepEqual(
      swapped.map((p) => {
        const { durationMs: _d, ...rest } = p as NucleusEvents['model.swapped'];
        return rest;
      }),
      [{ model: 'story', fromVersion: '1', toVersion: '2', source: newFile }],
    );
    const unloaded = events
      .filter((e) => e.type === 'model.unloaded' && (e.payload as { model: string }).model === 'story')
      .map((e) => (e.payload as { version: string }).version);
    assert.deepEqual(unloaded, ['1', '2'], 'the old version closed after the swap, the new one at the unload');
    const listed = (await admin(k, '/admin/models')).body as { models: RegisteredModel[] };
    assert.ok(!listed.models.some((m) => m.name === 'story'));
    const gone = await k.request('/v1/completions', {
      body: { model: 'story', prompt: PROMPT, max_tokens: 4 },
      headers: { authorization: 'Bearer admin-key-0123456789' },
    });
    assert.deepEqual([gone.status, errorOf(gone).code], [404, 'model_not_found']);
  });

  it('ends a stream still running when the drain timeout runs out with a model_unloading error event', async () => {
    const k = kit!;
    assert.equal(
      (await admin(k, '/admin/models', { body: { name: 'long', source: join(STORIES_DIR, 'stories260K.gguf') } }))
        .status,
      201,
    );
    let unloading: Promise<unknown> | undefined;
    const stream = await streamCompletion(
      k,
      { model: 'long', prompt: PROMPT, max_tokens: 480, ignore_eos: true },
      () => {
        unloading = admin(k, '/admin/models/long?drainTimeoutMs=0', { method: 'DELETE' });
      },
    );
    const res = (await unloading) as { status: number };
    assert.equal(res.status, 200);
    assert.equal(stream.status, 200);
    assert.equal(stream.complete, false);
    assert.equal(stream.error?.code, 'model_unloading', JSON.stringify(stream));
    assert.match(stream.error!.message, /long/);
  });
});
