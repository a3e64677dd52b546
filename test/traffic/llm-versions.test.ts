import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { AlertNotice } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { streamCompletion, type StreamOutcome } from '../model-lifecycle/lifecycle-fixtures.js';

const ADMIN_KEY = 'admin-key-0123456789';
const plugin = (id: string): string => join(REPO_ROOT, 'plugins', id);
const PROMPT = 'Once upon a time';

/** Polls `read` every 50 ms until `done` holds, at most `tries` times; the last value either way. */
async function poll<T>(read: () => Promise<T>, done: (value: T) => boolean, tries = 400): Promise<T> {
  let value = await read();
  for (let i = 0; i < tries && !done(value); i++) {
    await new Promise((r) => setTimeout(r, 50));
    value = await read();
  }
  return value;
}

/** Runs `count` calls of `one`, `width` at a time. */
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

interface TrafficState {
  requests: number;
  variants: Array<{ role: string; version?: string; requests: number; errors: number }>;
  canary?: { state: string; percent: number; rollback?: { reason: string } };
  shadow?: { copies: number; compared: number; failed: number; agreement: number | null; agreementKind?: string };
}

describe('several versions of one LLM name side by side, split by traffic policies on every LLM API', () => {
  let kit: TestKernel;
  let dir: string;
  let other: string;
  const stories = join(STORIES_DIR, 'stories260K.gguf');
  const alerts: AlertNotice[] = [];

  before(async function () {
    requireStories(this);
    dir = tempDir('llm-versions');
    // Another model altogether: random weights over a vocabulary of its own.
    other = join(dir, 'other-llama.gguf');
    writeTestLlamaGguf(other);
    kit = await startTestKernel({
      plugins: [plugin('api-openai'), plugin('api-kserve'), plugin('model-lifecycle'), plugin('traffic-policy')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      builtinModels: false,
      config: {
        'scheduler.batchWindowMs': 2,
        // Two versions of `writer` from the config: the same file, so that they answer alike.
        models: [
          { name: 'writer', path: stories, version: '1' },
          { name: 'writer', path: stories, version: '2' },
        ],
        'plugin.model-lifecycle.drainTimeoutMs': 30_000,
        // The breaker would answer a failing canary's requests itself; these tests are about the canary.
        'breaker.failureThreshold': 1000,
      },
    });
    kit.kernel.events.on('alert.fired', (a) => alerts.push(a));
  });
  after(async () => {
    await kit?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const send = (path: string, init: { method?: string; body?: unknown; headers?: Record<string, string> } = {}) =>
    kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}`, ...init.headers } });
  const policy = async (body: unknown) => {
    const res = await send('/admin/traffic/writer', { method: 'PUT', body });
    assert.equal(res.status, 200, JSON.stringify(res.body));
  };
  const traffic = async (): Promise<TrafficState> =>
    (
      (await send('/status')).body as {
        traffic: { 'traffic-policy': { models: Record<string, TrafficState> } };
      }
    ).traffic['traffic-policy'].models.writer!;
  const complete = (user: string, extra: Record<string, unknown> = {}) =>
    send('/v1/completions', {
      body: { model: 'writer', prompt: PROMPT, max_tokens: 1, temperature: 0, user, ...extra },
    });

  it('lists both versions: the registry, /v1/models (`writer` and `writer:1`, `writer:2`) and KServe metadata', async () => {
    const registry = (await send('/admin/models')).body as {
      models: Array<{ name: string; kind: string; defaultVersion: string; versions: Array<{ version: string }> }>;
    };
    const writer = registry.models.find((m) => m.name === 'writer')!;
    assert.equal(writer.kind, 'llm');
    assert.deepEqual(
      writer.versions.map((v) => v.version),
      ['1', '2'],
    );
    assert.equal(writer.defaultVersion, '2');
    const ids = ((await send('/v1/models')).body as { data: Array<{ id: string }> }).data.map((m) => m.id);
    assert.deepEqual(ids, ['writer', 'writer:1', 'writer:2']);
    const meta = (await send('/v2/models/writer')).body as { versions: string[] };
    assert.deepEqual(meta.versions, ['1', '2']);
    // `name:version` addresses one version past any router, and says so.
    const pinned = await send('/v1/chat/completions', {
      body: { model: 'writer:1', messages: [{ role: 'user', content: PROMPT }], max_tokens: 2, temperature: 0 },
    });
    assert.equal(pinned.status, 200, JSON.stringify(pinned.body));
    assert.equal(pinned.headers.get('x-model-version'), '1');
    assert.equal((pinned.body as { model: string }).model, 'writer');
    const missing = await send('/v1/completions', { body: { model: 'writer:7', prompt: PROMPT, max_tokens: 1 } });
    assert.equal(missing.status, 404);
    assert.equal((missing.body as { error: { code: string } }).error.code, 'version_not_found');
    assert.match((missing.body as { error: { message: string } }).error.message, /versions: 1, 2/);
  });

  it('splits 500 users 80/20 between the two versions, sticky per user on OpenAI and native APIs, naming the version', async () => {
    await policy({
      type: 'weights',
      variants: [
        { version: '1', weight: 80 },
        { version: '2', weight: 20 },
      ],
    });
    const USERS = 500;
    const openai = await many(USERS, 8, async (i) => {
      const res = await complete(`user-${i}`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.headers.get('x-model-version')!;
    });
    const share1 = openai.filter((v) => v === '1').length / USERS;
    assert.ok(share1 >= 0.75 && share1 <= 0.85, `version 1 answered ${share1 * 100} % of users`);
    assert.equal(openai.filter((v) => v === '1' || v === '2').length, USERS);
    // The same users again, on /generate (the header keys them) and KServe generate: each on the version it had.
    for (let i = 0; i < 40; i++) {
      const native = await send('/generate', {
        body: { model: 'writer', prompt: PROMPT, max_tokens: 1, temperature: 0 },
        headers: { 'x-user-id': `user-${i}` },
      });
      assert.equal(native.status, 200, JSON.stringify(native.body));
      assert.equal(native.headers.get('x-model-version'), openai[i], `user-${i} stays on one version`);
      const kserve = await send('/v2/models/writer/generate', {
        body: { text_input: PROMPT, parameters: { max_tokens: 1, temperature: 0 } },
        headers: { 'x-user-id': `user-${i}` },
      });
      assert.equal(kserve.status, 200, JSON.stringify(kserve.body));
      assert.equal((kserve.body as { model_version: string }).model_version, openai[i]);
    }
    const state = await traffic();
    assert.equal(state.requests, USERS + 80);
    assert.equal(
      state.variants.reduce((n, v) => n + v.errors, 0),
      0,
    );
  });

  it('copies streamed requests to a shadow version unstreamed and reports their agreement, the stream untouched', async () => {
    await policy({ type: 'shadow', primary: { version: '1' }, shadow: { version: '2' } });
    const direct = (
      await send('/v1/completions', {
        body: { model: 'writer:1', prompt: PROMPT, max_tokens: 12, temperature: 0 },
      })
    ).body as { choices: Array<{ text: string }> };
    const streams: StreamOutcome[] = [];
    for (let i = 0; i < 3; i++)
      streams.push(await streamCompletion(kit, { model: 'writer', prompt: PROMPT, max_tokens: 12 }));
    // Native /chat streams too.
    const chat = await send('/chat', {
      body: {
        model: 'writer',
        messages: [{ role: 'user', content: PROMPT }],
        max_tokens: 12,
        temperature: 0,
        stream: true,
      },
    });
    assert.equal(chat.status, 200);
    for (const s of streams) {
      assert.ok(s.complete, JSON.stringify(s));
      assert.equal(s.text, direct.choices[0]!.text, 'the client hears the primary, whole');
    }
    const state = await poll(traffic, (t) => (t.shadow?.compared ?? 0) >= 4);
    assert.equal(state.shadow?.copies, 4);
    assert.equal(state.shadow?.compared, 4);
    assert.equal(state.shadow?.failed, 0);
    assert.equal(state.shadow?.agreementKind, 'tokens');
    // Both versions are the same file answering greedily: they agree word for word.
    assert.equal(state.shadow?.agreement, 1);
    // The shadow's own version answered each copy.
    assert.equal(state.variants.find((v) => v.role === 'shadow')?.requests, 4);
  });

  it('swaps one version and unloads another while clients stream, with no failed request', async () => {
    await policy({
      type: 'weights',
      variants: [
        { version: '1', weight: 50 },
        { version: '2', weight: 50 },
      ],
    });
    let stop = false;
    const outcomes: StreamOutcome[] = [];
    const versionsSeen = new Set<string>();
    const clients = Array.from({ length: 4 }, async (_, c) => {
      for (let i = 0; !stop && i < 400; i++) {
        outcomes.push(await streamCompletion(kit, { model: 'writer', prompt: PROMPT, max_tokens: 6 }));
        const res = await complete(`swap-${c}-${i}`);
        if (res.status !== 200) outcomes.push({ status: res.status, text: '', complete: false, chunks: 0 });
        else versionsSeen.add(res.headers.get('x-model-version')!);
      }
    });
    try {
      // Version 2 becomes another model (a swap of that version only); version 1 serves on untouched.
      const swapped = await send('/admin/models/writer/versions/2/swap', { body: { source: other } });
      assert.equal(swapped.status, 200, JSON.stringify(swapped.body));
      const model = (swapped.body as { model: { versions: Array<{ version: string; source: string }> } }).model;
      assert.deepEqual(
        model.versions.map((v) => [v.version, v.source]),
        [
          ['1', stories],
          ['2', other],
        ],
      );
      // Then version 2 leaves: first the policy, then the version.
      await policy({ type: 'weights', variants: [{ version: '1', weight: 1 }] });
      const unloaded = await send('/admin/models/writer/versions/2', { method: 'DELETE' });
      assert.equal(unloaded.status, 200, JSON.stringify(unloaded.body));
      await new Promise((r) => setTimeout(r, 200));
    } finally {
      stop = true;
      await Promise.all(clients);
    }
    const failed = outcomes.filter((o) => o.status !== 200 || !o.complete);
    assert.deepEqual(failed, [], 'no request failed');
    assert.ok(outcomes.length >= 8, `${outcomes.length} streams ran`);
    const after = (await send('/admin/models')).body as { models: Array<{ name: string; versions: unknown[] }> };
    assert.equal(after.models.find((m) => m.name === 'writer')?.versions.length, 1);
    const gone = await send('/v1/completions', { body: { model: 'writer:2', prompt: PROMPT, max_tokens: 1 } });
    assert.equal(gone.status, 404);
    // A version loaded beside again (POST /admin/models with a version) serves at once.
    const loaded = await send('/admin/models', {
      method: 'POST',
      body: { name: 'writer', version: '3', source: stories },
    });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    const three = await send('/generate', { body: { model: 'writer:3', prompt: PROMPT, max_tokens: 1 } });
    assert.equal(three.status, 200, JSON.stringify(three.body));
    assert.equal(three.headers.get('x-model-version'), '3');
    assert.ok(versionsSeen.has('1'));
  });

  it('rolls a canary version back when its requests fail, with an alert, and serves every user from stable', async () => {
    // The canary's requests fail for real: version 3 is unloaded with no drain time while its streams run, so each
    // stream in flight ends with a model_unloading error (a botched roll-out pulled from under its clients). Unloading
    // is immediate, where a swap would first load its replacement while the streams run to their end.
    await policy({
      type: 'canary',
      stable: { version: '1' },
      canary: { version: '3' },
      startPercent: 50,
      stepPercent: 10,
      stepIntervalMs: 600_000,
      minRequests: 3,
      maxErrorRateIncrease: 0.1,
    });
    // Users the canary takes, found by their answer's version header.
    const canaryUsers: string[] = [];
    for (let i = 0; canaryUsers.length < 3 && i < 60; i++) {
      const res = await complete(`canary-${i}`);
      assert.equal(res.status, 200);
      if (res.headers.get('x-model-version') === '3') canaryUsers.push(`canary-${i}`);
    }
    assert.equal(canaryUsers.length, 3);
    const streams = canaryUsers.map((user) => {
      let started!: () => void;
      const first = new Promise<void>((r) => (started = r));
      const done = fetch(new URL('/v1/completions', kit.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
        body: JSON.stringify({
          model: 'writer',
          prompt: PROMPT,
          max_tokens: 400,
          ignore_eos: true,
          temperature: 0,
          stream: true,
          user,
        }),
      }).then(async (res) => {
        let text = '';
        for await (const part of res.body!) {
          text += Buffer.from(part as Uint8Array).toString();
          started();
        }
        started();
        return { status: res.status, text, complete: text.includes('[DONE]'), chunks: 0 } as StreamOutcome;
      });
      return { first, done };
    });
    await Promise.all(streams.map((s) => s.first));
    const unload = await send('/admin/models/writer/versions/3?drainTimeoutMs=0', { method: 'DELETE' });
    assert.equal(unload.status, 200, JSON.stringify(unload.body));
    const outcomes = await Promise.all(streams.map((s) => s.done));
    for (const o of outcomes) {
      assert.equal(o.complete, false);
      assert.match(o.text, /model_unloading/);
    }
    const state = await poll(traffic, (t) => t.canary?.state === 'rolled_back');
    assert.equal(state.canary?.state, 'rolled_back');
    assert.equal(state.canary?.percent, 0);
    assert.equal(state.canary?.rollback?.reason, 'error_rate');
    const alert = alerts.find((a) => a.name === 'CanaryRolledBack');
    assert.ok(alert, 'an alert was sent');
    assert.equal(alert.labels.canary, 'writer@3');
    for (const user of canaryUsers) {
      const res = await complete(user);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-model-version'), '1');
    }
  });
});
