import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import type { NucleusEvents, StatsSnapshot } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { Exposition, pluginDir } from './helpers.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');
const MODEL = 'tiny-llama';
const METRIC = 'nucleus_token_delivery_seconds';

/** The `data:` payloads of an SSE body. */
function sseData(text: string): string[] {
  return text
    .split('\n\n')
    .flatMap((block) => block.split('\n').filter((l) => l.startsWith('data: ')))
    .map((l) => l.slice(6));
}

/** Streams one request; its data payloads and how long it took from sending to the end of the body, in ms. */
async function stream(
  kit: TestKernel,
  path: string,
  body: Record<string, unknown>,
): Promise<{ data: string[]; requestId: string; elapsedMs: number }> {
  const started = performance.now();
  const res = await fetch(new URL(path, kit.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  assert.equal(res.status, 200);
  const text = await res.text();
  return {
    data: sseData(text),
    requestId: res.headers.get('x-request-id') ?? '',
    elapsedMs: performance.now() - started,
  };
}

describe('token delivery: from sampling in the generation thread to the SSE socket', () => {
  let kit: TestKernel;
  const delivered: NucleusEvents['generation.delivery'][] = [];
  let off: () => void;

  before(async () => {
    kit = await startTestKernel({
      plugins: [API_PLUGIN, pluginDir('metrics'), pluginDir('stats')],
      config: { 'scheduler.batchWindowMs': 5 },
    });
    off = kit.kernel.events.on('generation.delivery', (e) => delivered.push(e));
  });
  after(async () => {
    off?.();
    await kit?.stop();
  });

  it('measures every streamed token once, with a delay between zero and the request time, in the metric and in /server/stats', async () => {
    // Two native streams at once (one long enough to report in several groups) and an OpenAI chat stream.
    const [a, b] = await Promise.all([
      stream(kit, '/generate', {
        model: MODEL,
        prompt: 'Once upon a time',
        max_tokens: 150,
        temperature: 0,
        ignore_eos: true,
      }),
      stream(kit, '/generate', { model: MODEL, prompt: 'Lily', max_tokens: 20, temperature: 0, ignore_eos: true }),
    ]);
    const chat = await stream(kit, '/v1/chat/completions', {
      model: MODEL,
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 16,
      temperature: 0,
      ignore_eos: true,
      stream_options: { include_usage: true },
    });
    const tokenEvents = (s: { data: string[] }) =>
      s.data.filter((d) => d !== '[DONE]' && (JSON.parse(d) as { token?: unknown }).token != null).length;
    const contentChunks = chat.data.filter(
      (d) =>
        d !== '[DONE]' &&
        ((JSON.parse(d) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '') !== '',
    ).length;
    assert.equal(tokenEvents(a), 150);
    assert.equal(tokenEvents(b), 20);
    assert.ok(contentChunks > 0, 'the chat stream carried text');

    // Token frames are written out by hand: each must be exactly what JSON.stringify gives for its object.
    for (const d of [...a.data, ...chat.data].filter((x) => x !== '[DONE]'))
      assert.equal(JSON.stringify(JSON.parse(d)), d);
    for (const d of a.data.filter((x) => (JSON.parse(x) as { token?: unknown }).token != null)) {
      assert.deepEqual(Object.keys(JSON.parse(d) as object), ['id', 'request_id', 'index', 'token', 'finish_reason']);
    }
    for (const d of chat.data.slice(1, 1 + contentChunks)) {
      const c = JSON.parse(d) as { choices: object[]; usage: unknown };
      assert.deepEqual(Object.keys(c), ['id', 'object', 'created', 'model', 'choices', 'usage']);
      assert.deepEqual(Object.keys(c.choices[0]!), ['index', 'delta', 'logprobs', 'finish_reason']);
      assert.equal(c.usage, null);
    }

    // The events: one delay per token frame written, grouped per request, each within the request's own time.
    const delays = (s: { requestId: string }) =>
      delivered.filter((e) => e.requestId === s.requestId).flatMap((e) => e.delaysMs);
    for (const [s, frames] of [
      [a, 150],
      [b, 20],
      [chat, contentChunks],
    ] as const) {
      assert.ok(s.requestId, 'the response names its request id');
      const ms = delays(s);
      assert.equal(ms.length, frames, `one delay per token frame of ${s.requestId}`);
      for (const d of ms)
        assert.ok(d >= 0 && d <= s.elapsedMs, `delay ${d} ms lies within the request's ${s.elapsedMs.toFixed(1)} ms`);
    }
    assert.ok(
      delivered.filter((e) => e.requestId === a.requestId).length >= 2,
      'a long stream reports in several groups',
    );
    assert.ok(delivered.every((e) => e.model === MODEL));
    const total = 150 + 20 + contentChunks;

    const res = await kit.request('/metrics');
    const exposition = new Exposition(res.body as string);
    assert.equal(exposition.family(METRIC).type, 'HISTOGRAM');
    const labels = { model_name: MODEL };
    assert.equal(exposition.count(METRIC, labels), total);
    const sumMs = delivered.flatMap((e) => e.delaysMs).reduce((x, y) => x + y, 0);
    assert.ok(Math.abs(exposition.sum(METRIC, labels) - sumMs / 1000) < 1e-6, 'the histogram sums the reported delays');
    const longest = Math.max(a.elapsedMs, b.elapsedMs, chat.elapsedMs) / 1000;
    assert.equal(exposition.bucket(METRIC, labels, '+Inf'), total);

    const stats = (await kit.request('/server/stats')).body as StatsSnapshot;
    const model = stats.models.find((m) => m.model === MODEL);
    assert.ok(model, 'the model has stats');
    const d = model.tokenDelivery;
    assert.equal(d.count, total);
    assert.ok(d.p50 !== null && d.p99 !== null && d.max !== null);
    assert.ok(d.p50 >= 0 && d.p50 <= d.p99 && d.p99 <= d.max && d.max <= longest * 1000);
  });
});
