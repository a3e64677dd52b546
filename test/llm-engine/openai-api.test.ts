import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import OpenAI from 'openai';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { until } from './helpers.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');
const MODEL = 'tiny-llama';
const messages = [{ role: 'user' as const, content: 'Tell me a story about Lily.' }];

/** The events of a raw SSE body: `{event, data}` per blank-line-separated block. */
function parseSse(text: string): { event?: string; data: string }[] {
  return text
    .split('\n\n')
    .filter((block) => block.trim() !== '')
    .map((block) => {
      const lines = block.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
      const data = lines
        .filter((l) => l.startsWith('data: '))
        .map((l) => l.slice(6))
        .join('\n');
      return { ...(event !== undefined && { event }), data };
    });
}

async function post(
  kit: TestKernel,
  path: string,
  body: unknown,
  init: { signal?: AbortSignal } = {},
): Promise<Response> {
  return fetch(new URL(path, kit.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...init,
  });
}

describe('OpenAI-compatible and native generation API over loopback', () => {
  let kit: TestKernel;
  let client: OpenAI;

  before(async () => {
    kit = await startTestKernel({ plugins: [API_PLUGIN], config: { 'scheduler.batchWindowMs': 5 } });
    client = new OpenAI({ baseURL: `${kit.url}/v1`, apiKey: 'dummy-key', maxRetries: 0 });
  });
  after(async () => {
    await kit?.stop();
  });

  it('lists the served models as OpenAI model objects', async () => {
    const models = [];
    for await (const m of client.models.list()) models.push(m);
    assert.deepEqual(models.map((m) => m.id).sort(), ['bert-tiny', 'stories260K', 'tiny-llama']);
    for (const m of models) {
      assert.equal(m.object, 'model');
      assert.equal(m.owned_by, 'nucleus');
      assert.equal(typeof m.created, 'number');
    }
    assert.equal((await client.models.retrieve(MODEL)).id, MODEL);
    await assert.rejects(
      client.models.retrieve('no-such-model'),
      (err: unknown) => err instanceof OpenAI.NotFoundError,
    );
  });

  it('streams chat.completion.chunk objects as the official client parses them, the same text as without streaming', async () => {
    // ignore_eos (a vLLM extra) keeps the random model going to max_tokens.
    const request = { model: MODEL, messages, max_tokens: 12, seed: 7, temperature: 0.8, ignore_eos: true } as {
      model: string;
      messages: typeof messages;
      max_tokens: number;
    };
    const whole = await client.chat.completions.create(request);
    assert.equal(whole.object, 'chat.completion');
    assert.match(whole.id, /^chatcmpl-/);
    assert.equal(whole.choices[0]!.message.role, 'assistant');
    assert.equal(whole.choices[0]!.finish_reason, 'length');
    assert.equal(whole.usage!.completion_tokens, 12);
    assert.equal(whole.usage!.total_tokens, whole.usage!.prompt_tokens + 12);

    const stream = await client.chat.completions.create({
      ...request,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    assert.ok(chunks.length >= 3);
    assert.equal(new Set(chunks.map((c) => c.id)).size, 1, 'one id shared by every chunk');
    assert.match(chunks[0]!.id, /^chatcmpl-/);
    for (const c of chunks) {
      assert.equal(c.object, 'chat.completion.chunk');
      assert.equal(c.model, MODEL);
    }
    assert.deepEqual(chunks[0]!.choices[0]!.delta, { role: 'assistant', content: '' });
    const choiceChunks = chunks.filter((c) => c.choices.length > 0);
    const last = choiceChunks[choiceChunks.length - 1]!;
    assert.equal(last.choices[0]!.finish_reason, 'length');
    for (const c of choiceChunks.slice(0, -1)) assert.equal(c.choices[0]!.finish_reason, null);
    for (const c of choiceChunks)
      assert.equal(c.usage, null, 'usage is null on choice chunks when include_usage is set');
    const final = chunks[chunks.length - 1]!;
    assert.deepEqual(final.choices, []);
    assert.deepEqual(final.usage, whole.usage);
    const text = choiceChunks.map((c) => c.choices[0]!.delta.content ?? '').join('');
    assert.equal(text, whole.choices[0]!.message.content);
  });

  it('sends data lines of JSON ending with data: [DONE], and no usage chunk unless asked', async () => {
    const res = await post(kit, '/v1/chat/completions', { model: MODEL, messages, max_tokens: 5, stream: true });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
    const events = parseSse(await res.text());
    assert.equal(events[events.length - 1]!.data, '[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data) as ChatCompletionChunk);
    assert.ok(chunks.every((c) => c.choices.length === 1 && !('usage' in c)));
  });

  it('streams text_completion chunks for several prompts and n choices, indexed prompt by prompt', async () => {
    const prompts = ['Once upon a time', 'Lily liked'];
    const whole = await client.completions.create({ model: MODEL, prompt: prompts, n: 2, max_tokens: 6, seed: 3 });
    assert.equal(whole.object, 'text_completion');
    assert.deepEqual(
      whole.choices.map((c) => c.index),
      [0, 1, 2, 3],
    );
    assert.equal(whole.usage!.completion_tokens, 24);
    const stream = await client.completions.create({
      model: MODEL,
      prompt: prompts,
      n: 2,
      max_tokens: 6,
      seed: 3,
      stream: true,
      stream_options: { include_usage: true },
    });
    const texts = ['', '', '', ''];
    const finishes: (string | null)[] = [null, null, null, null];
    let usage: OpenAI.Completions.CompletionUsage | undefined;
    for await (const chunk of stream) {
      assert.equal(chunk.object, 'text_completion');
      for (const c of chunk.choices) {
        assert.equal(finishes[c.index], null, 'nothing after a choice finished');
        texts[c.index] += c.text;
        finishes[c.index] = c.finish_reason;
      }
      if (chunk.usage) usage = chunk.usage;
    }
    assert.deepEqual(
      texts,
      whole.choices.map((c) => c.text),
    );
    assert.deepEqual(finishes, ['length', 'length', 'length', 'length']);
    assert.deepEqual(usage, whole.usage);
    const echoed = await client.completions.create({ model: MODEL, prompt: 'Lily', max_tokens: 2, echo: true });
    assert.ok(echoed.choices[0]!.text.startsWith('Lily'));
  });

  it('embeds through the client (base64) with the same numbers as the float format', async () => {
    const viaClient = await client.embeddings.create({ model: 'bert-tiny', input: ['hello', 'world'] });
    assert.equal(viaClient.object, 'list');
    assert.equal(viaClient.data.length, 2);
    assert.equal(viaClient.data[1]!.index, 1);
    assert.equal(viaClient.usage.prompt_tokens, 14);
    const raw = await post(kit, '/v1/embeddings', {
      model: 'bert-tiny',
      input: ['hello', 'world'],
      encoding_format: 'float',
    });
    const floats = (await raw.json()) as { data: { embedding: number[] }[] };
    viaClient.data.forEach((d, i) => {
      assert.equal(d.embedding.length, 32);
      d.embedding.forEach((v, j) => assert.ok(Math.abs(v - floats.data[i]!.embedding[j]!) < 1e-6));
    });
    const decoder = await client.embeddings.create({ model: MODEL, input: 'Once upon a time' });
    assert.equal(decoder.data[0]!.embedding.length, 64);
  });

  it('answers bad requests with 400 error objects and unknown models with 404', async () => {
    const bad = async (path: string, body: unknown, code: string, message?: RegExp) => {
      const res = await post(kit, path, body);
      const json = (await res.json()) as { error: { message: string; type: string; code: string } };
      assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}: ${json.error?.message}`);
      assert.equal(json.error.type, 'invalid_request_error');
      assert.equal(json.error.code, code);
      if (message) assert.match(json.error.message, message);
    };
    await bad('/v1/chat/completions', '{"model": "tiny-llama", ', 'invalid_json');
    await bad('/v1/chat/completions', { model: MODEL }, 'missing_field', /'messages' is a required property/);
    await bad('/v1/chat/completions', { messages }, 'missing_field', /'model'/);
    await bad('/v1/chat/completions', { model: MODEL, messages, temperature: 'hot' }, 'invalid_field', /temperature/);
    await bad(
      '/v1/chat/completions',
      { model: MODEL, messages, max_tokens: 1000 },
      'context_length_exceeded',
      /maximum context length is 256 tokens/,
    );
    await bad(
      '/v1/chat/completions',
      { model: MODEL, messages, tools: [{ type: 'function', function: { name: 'f' } }] },
      'tools_unsupported',
      /chat template cannot render tools/,
    );
    await bad('/v1/completions', { model: MODEL, prompt: 'x'.repeat(400) }, 'context_length_exceeded', /256/);
    await bad('/generate', { model: MODEL }, 'missing_field');
    await bad('/v1/embeddings', { model: 'bert-tiny', input: 'x'.repeat(300) }, 'context_length_exceeded', /128/);
    await assert.rejects(
      client.chat.completions.create({ model: 'no-such-model', messages }),
      (err: unknown) => err instanceof OpenAI.NotFoundError && err.status === 404,
    );
    await assert.rejects(
      client.chat.completions.create({ model: MODEL, messages, max_tokens: 999 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError,
    );
    const notFound = await post(kit, '/generate', { model: 'nope', prompt: 'x' });
    assert.equal(notFound.status, 404);
    assert.equal(((await notFound.json()) as { error: { code: string } }).error.code, 'model_not_found');
  });

  it('says what a field may be, refuses unknown chat roles and empty embedding input, and asks for JSON when the body is not', async () => {
    const refused = async (
      path: string,
      body: string,
      headers: Record<string, string>,
      status: number,
      code: string,
      message: RegExp,
    ) => {
      const res = await fetch(new URL(path, kit.url), { method: 'POST', headers, body });
      const json = (await res.json()) as { error: { message: string; type: string; code: string } };
      assert.equal(res.status, status, `${path} ${body}: ${json.error?.message}`);
      assert.equal(json.error.type, 'invalid_request_error');
      assert.equal(json.error.code, code);
      assert.match(json.error.message, message);
    };
    const json = { 'content-type': 'application/json' };
    const inputs =
      /^'input' must be a non-empty string, a list of 1 to 2048 non-empty strings, a non-empty list of token ids \(integers\) or a list of 1 to 2048 such lists$/;
    for (const input of [[], '', [''], [[]], {}]) {
      await refused(
        '/v1/embeddings',
        JSON.stringify({ model: 'bert-tiny', input }),
        json,
        400,
        'invalid_field',
        inputs,
      );
    }
    assert.equal(
      (await post(kit, '/v1/embeddings', { model: 'bert-tiny', input: ['a', 'b'] })).status,
      200,
      'a list of strings is taken',
    );
    const roles = /^'messages\.1\.role' must be one of "system", "developer", "user", "assistant", "tool"$/;
    const wizard = JSON.stringify({
      model: MODEL,
      messages: [messages[0], { role: 'wizard', content: 'abracadabra' }],
      max_tokens: 2,
    });
    await refused('/v1/chat/completions', wizard, json, 400, 'invalid_field', roles);
    await refused('/chat', wizard, json, 400, 'invalid_field', roles);
    await refused(
      '/generate',
      JSON.stringify({ model: MODEL, prompt: [] }),
      json,
      400,
      'invalid_field',
      /^'prompt' must be a string or a non-empty list of token ids \(integers\)$/,
    );
    await refused(
      '/v1/completions',
      JSON.stringify({ model: MODEL, prompt: 7 }),
      json,
      400,
      'invalid_field',
      /^'prompt' must be a string, a non-empty list of strings, /,
    );
    await refused(
      '/v1/completions',
      JSON.stringify({ model: MODEL, prompt: 'x', stop: 3 }),
      json,
      400,
      'invalid_field',
      /^'stop' must be a string or a list of strings$/,
    );
    for (const role of ['system', 'developer', 'tool']) {
      const ok = await post(kit, '/v1/chat/completions', {
        model: MODEL,
        messages: [{ role, content: 'be brief' }, ...messages],
        max_tokens: 2,
      });
      assert.equal(ok.status, 200, `role ${role}`);
    }
    // curl -d sends a form type; a client may send none.
    const body = JSON.stringify({ model: MODEL, messages, max_tokens: 2 });
    const mustBeJson =
      /^the request body must be JSON, sent with Content-Type: application\/json \((got application\/x-www-form-urlencoded|no Content-Type was sent)\)$/;
    await refused(
      '/v1/chat/completions',
      body,
      { 'content-type': 'application/x-www-form-urlencoded' },
      415,
      'unsupported_media_type',
      mustBeJson,
    );
    await refused(
      '/generate',
      JSON.stringify({ model: MODEL, prompt: 'x' }),
      { 'content-type': 'application/x-www-form-urlencoded' },
      415,
      'unsupported_media_type',
      mustBeJson,
    );
    const untyped = await fetch(new URL('/v1/embeddings', kit.url), {
      method: 'POST',
      body: new Blob([JSON.stringify({ model: 'bert-tiny', input: 'x' })]),
    });
    assert.equal(untyped.status, 415);
    assert.match(((await untyped.json()) as { error: { message: string } }).error.message, mustBeJson);
    await refused(
      '/v1/completions',
      '',
      {},
      400,
      'invalid_request',
      /^the request has no body: send a JSON object with Content-Type: application\/json$/,
    );
  });

  it('serves the native /generate, /chat and /embeddings with request ids, token events and usage', async () => {
    const whole = await kit.request('/generate', {
      body: { model: MODEL, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 },
      headers: { 'x-request-id': 'req-native-1' },
    });
    assert.equal(whole.status, 200);
    const body = whole.body as {
      id: string;
      request_id: string;
      choices: { index: number; text: string; token_ids: number[]; finish_reason: string }[];
      usage: { completion_tokens: number };
    };
    assert.equal(body.request_id, 'req-native-1');
    assert.match(body.id, /^gen-/);
    assert.equal(body.choices[0]!.token_ids.length, 8);
    assert.equal(body.choices[0]!.finish_reason, 'length');
    assert.equal(body.usage.completion_tokens, 8);

    const res = await post(kit, '/generate', {
      model: MODEL,
      prompt: 'Once upon a time',
      max_tokens: 8,
      temperature: 0,
      stream: true,
    });
    const events = parseSse(await res.text());
    const done = events.find((e) => e.event === 'done')!;
    const data = events
      .filter((e) => e.event === undefined)
      .map(
        (e) =>
          JSON.parse(e.data) as {
            index: number;
            token: { id: number; text: string } | null;
            text?: string;
            finish_reason: string | null;
          },
      );
    const tokens = data.filter((d) => d.token !== null);
    assert.deepEqual(
      tokens.map((d) => d.token!.id),
      body.choices[0]!.token_ids,
    );
    assert.ok(tokens.every((d) => d.index === 0 && d.finish_reason === null));
    const finish = data[data.length - 1]!;
    assert.equal(finish.finish_reason, 'length');
    assert.equal(tokens.map((d) => d.token!.text).join('') + (finish.text ?? ''), body.choices[0]!.text);
    assert.equal((JSON.parse(done.data) as { usage: { completion_tokens: number } }).usage.completion_tokens, 8);

    const chat = await kit.request('/chat', { body: { model: MODEL, messages, max_tokens: 4, stop: ['zzz'] } });
    const chatBody = chat.body as {
      choices: { message: { role: string; content: string }; finish_reason: string }[];
      usage: { prompt_tokens: number };
    };
    assert.equal(chatBody.choices[0]!.message.role, 'assistant');
    const openai = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 4 });
    assert.equal(chatBody.usage.prompt_tokens, openai.usage!.prompt_tokens, 'both APIs count the same prompt');

    const emb = await kit.request('/embeddings', {
      body: { model: 'bert-tiny', input: 'hello', pooling: 'cls', normalize: false },
    });
    const embBody = emb.body as { data: { index: number; embedding: number[] }[]; usage: { prompt_tokens: number } };
    assert.equal(embBody.data[0]!.embedding.length, 32);
    assert.equal(embBody.usage.prompt_tokens, 7);
  });

  it('drops the sequence of a client that disconnects mid-stream and frees its slot', async () => {
    const ends: string[] = [];
    const off = kit.kernel.events.on('generation.end', (e) => ends.push(e.finishReason));
    try {
      const controller = new AbortController();
      const res = await post(
        kit,
        '/v1/chat/completions',
        { model: MODEL, messages, max_tokens: 200, ignore_eos: true, stream: true, n: 8 },
        { signal: controller.signal },
      );
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      const { value } = await reader.read();
      assert.ok(value && value.length > 0);
      controller.abort();
      await until(() => ends.includes('abort'), 5000, 'the generation to end as aborted');
      await until(() => kit.kernel.generation.get(MODEL).running === 0, 5000, 'no running sequence');
    } finally {
      off();
    }
  });

  it('ends a stream with an SSE error event when the engine fails mid-stream', async () => {
    const res = await post(kit, '/v1/chat/completions', {
      model: MODEL,
      messages,
      max_tokens: 200,
      ignore_eos: true,
      stream: true,
    });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    // Killed once a token has streamed: a request with none yet would be run again on the restarted worker.
    let text = '';
    while (!/"content":"[^"]/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    await kit.kernel.generation.killWorker(MODEL);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const events = parseSse(text);
    const error = events.find((e) => e.event === 'error');
    assert.ok(error, 'an error event was sent');
    assert.equal((JSON.parse(error.data) as { error: { code: string } }).error.code, 'worker_exited');
    assert.ok(!events.some((e) => e.data === '[DONE]'));
    const again = await client.chat.completions.create({ model: MODEL, messages, max_tokens: 2 });
    assert.equal(again.usage!.completion_tokens, 2);
  });

  it('keeps /health answering quickly while 10 streams of 2 choices generate', async () => {
    let generating = true;
    const latencies: number[] = [];
    const probe = (async () => {
      while (generating) {
        const started = performance.now();
        const res = await fetch(new URL('/health', kit.url));
        await res.text();
        latencies.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const streams = Array.from({ length: 10 }, async (_, i) => {
      const s = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: `story ${i}` }],
        max_tokens: 200,
        n: 2,
        ignore_eos: true,
        stream: true,
      } as never);
      let chunks = 0;
      for await (const _chunk of s as unknown as AsyncIterable<ChatCompletionChunk>) chunks++;
      return chunks;
    });
    const counts = await Promise.all(streams);
    generating = false;
    await probe;
    assert.ok(counts.every((c) => c > 10));
    assert.ok(latencies.length >= 5, `probed /health ${latencies.length} times while generating`);
    // The median, not the worst: a shared machine may take the CPU away from this process now and then, which the
    // benchmarks measure (bench/results/llm.md: /health p99 during 32 streams).
    latencies.sort((a, b) => a - b);
    const median = latencies[Math.floor(latencies.length / 2)]!;
    assert.ok(median < 50, `/health median ${median.toFixed(1)} ms, slowest ${latencies.at(-1)!.toFixed(1)} ms`);
  });
});
