import { strict as assert } from 'node:assert';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { WsClient } from '../helpers/ws-client.js';
import { requireStories } from '../llm-formats/llm-module.js';
import { pluginDir, until } from '../observability/helpers.js';

// The built-in stories260K (the shared trained model) and the built-in tensor models serve when none is configured.
const MODEL = 'stories260K';
const ALICE = 'alice-key-ws-inference-0123456789';
const BOB = 'bob-key-ws-inference-0123456789';

const bearer = (key?: string): Record<string, string> => (key ? { authorization: `Bearer ${key}` } : {});

describe('inference over /ws: generate, chat and infer, multiplexed, cancellable, with HTTP auth and admission', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  const clients: WsClient[] = [];
  const open = async (key = ALICE) => {
    const c = await WsClient.open(kit.url, bearer(key));
    clients.push(c);
    return c;
  };

  before(async function () {
    requireStories(this);
    kit = await startTestKernel({
      plugins: [pluginDir('api-openai'), pluginDir('api-kserve'), pluginDir('cache-lru')],
      config: {
        'scheduler.batchWindowMs': 5,
        'cache.prefix.maxBytes': 8 * 1024 * 1024,
        'auth.keys': [
          { key: ALICE, role: 'user', name: 'alice' },
          { key: BOB, role: 'user', name: 'bob' },
        ],
        'ws.maxBufferedBytes': 64 * 1024,
      },
    });
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.ws.terminate();
  });
  after(async () => {
    await kit?.stop();
  });

  it('streams a generate and a chat at once on one socket, each under its own id, with the text HTTP gives', async () => {
    const c = await open();
    const generate = { model: MODEL, prompt: 'Once upon a time', max_tokens: 24, temperature: 0, ignore_eos: true };
    const chat = { model: MODEL, messages: [{ role: 'user', content: 'Hi' }], max_tokens: 16, temperature: 0 };
    c.send({ type: 'generate', id: 'g1', ...generate });
    c.send({ type: 'chat', id: 7, ...chat });
    const doneG = await c.next((m) => m.type === 'done' && m.id === 'g1');
    const doneC = await c.next((m) => m.type === 'done' && m.id === 7);
    const tokens = c.of('g1').filter((m) => m.type === 'token');
    assert.equal(tokens.length, 24);
    const text = tokens.map((m) => (m.token as { text: string } | null)?.text ?? (m.text as string)).join('');
    const http = await kit.request('/generate', { body: generate, headers: { authorization: `Bearer ${ALICE}` } });
    assert.equal(text, (http.body as { choices: { text: string }[] }).choices[0]!.text);
    assert.deepEqual((doneG.usage as { completion_tokens: number }).completion_tokens, 24);
    assert.equal(doneG.finish_reason, 'length');
    const deltas = c.of(7).filter((m) => m.type === 'delta');
    assert.ok(deltas.length > 0);
    const chatHttp = await kit.request('/v1/chat/completions', {
      body: chat,
      headers: { authorization: `Bearer ${ALICE}` },
    });
    assert.equal(
      deltas.map((m) => m.content).join(''),
      (chatHttp.body as { choices: { message: { content: string } }[] }).choices[0]!.message.content,
    );
    assert.ok(['stop', 'length'].includes(doneC.finish_reason as string));
    // The two streams interleaved on the socket rather than one after the other.
    const order = c.received.filter((m) => m.id === 'g1' || m.id === 7).map((m) => m.id);
    assert.ok(order.indexOf(7) < order.lastIndexOf('g1'), 'the chat began before the generate ended');
  });

  it('answers infer on a built-in tensor model with its outputs, and a wrong input with an error for that id', async () => {
    const c = await open();
    c.send({ type: 'infer', id: 'i1', model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } });
    const result = await c.next((m) => m.id === 'i1');
    assert.equal(result.type, 'result', JSON.stringify(result));
    assert.deepEqual((result.shapes as Record<string, number[]>).probabilities, [1, 3]);
    const probs = (result.outputs as { probabilities: number[][] }).probabilities[0]!;
    assert.ok(Math.abs(probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    c.send({ type: 'infer', id: 'i2', model: 'mlp-classifier', inputs: { nope: [[1]] } });
    const error = await c.next((m) => m.id === 'i2');
    assert.equal(error.type, 'error');
    assert.equal((error.error as { code: string }).code, 'unknown_input');
    c.send({ type: 'generate', id: 'g', model: 'no-such-model', prompt: 'x' });
    const missing = await c.next((m) => m.id === 'g');
    assert.equal((missing.error as { type: string }).type, 'not_found_error');
    await c.pong();
  });

  it('cancels a request on {"type":"cancel"} (acknowledged, nothing after), and answers an unknown id with an error', async () => {
    const c = await open();
    c.send({ type: 'generate', id: 'long', model: MODEL, prompt: 'Once', max_tokens: 400, ignore_eos: true });
    await c.next((m) => m.type === 'token' && m.id === 'long');
    c.send({ type: 'cancel', id: 'long' });
    const ack = await c.next((m) => m.type === 'cancelled' && m.id === 'long');
    const at = c.received.indexOf(ack);
    // The engine has let go of it; nothing more about it arrived after the acknowledgement.
    await until(() => kit.kernel.generation.admission.running === 0, 'the cancelled generation to stop', 20_000);
    await c.pong();
    assert.deepEqual(
      c.received.slice(at + 1).filter((m) => m.id === 'long'),
      [],
    );
    assert.ok(c.of('long').filter((m) => m.type === 'token').length < 400);
    c.send({ type: 'cancel', id: 'never-sent' });
    const unknown = await c.next((m) => m.id === 'never-sent');
    assert.equal(unknown.type, 'error');
    assert.equal((unknown.error as { code: string }).code, 'unknown_request');
    await c.pong();
  });

  it('answers a message that is not JSON, an unknown type or a request without id with an error, and stays usable', async () => {
    const c = await open();
    const from = c.received.length;
    c.send('{not json');
    c.send({ type: 'teleport', id: 1 });
    c.send({ type: 'generate', model: MODEL, prompt: 'x' });
    c.send({ type: 'generate', id: 'bad', model: MODEL, prompt: 'x', temperature: 'hot' });
    await c.next((m) => m.id === 'bad');
    const errors = c.received.slice(from).filter((m) => m.type === 'error');
    assert.deepEqual(
      errors.map((m) => (m.error as { code: string }).code),
      ['invalid_json', 'unknown_type', 'invalid_id', 'invalid_field'],
    );
    for (const type of ['"generate"', '"chat"', '"infer"', '"cancel"'])
      assert.ok((errors[1]!.error as { message: string }).message.includes(type), `the error names ${type}`);
    await c.pong();
  });

  it('closes with 1009 on a message past the size cap', async () => {
    const c = await open();
    const code = new Promise<number>((resolve) => c.ws.once('close', (code) => resolve(code)));
    c.send({ type: 'generate', id: 'big', model: MODEL, prompt: 'x'.repeat(2 << 20) });
    assert.equal(await code, 1009);
  });

  it("carries the socket's key: a conversation started on alice's socket is hers, not bob's", async () => {
    const c = await open(ALICE);
    c.send({
      type: 'generate',
      id: 'conv',
      model: MODEL,
      prompt:
        'Once upon a time there was a little girl named Lily. She liked to play in the park with her dog. '.repeat(3),
      max_tokens: 4,
      conversation_id: 'ws-talk',
    });
    await c.next((m) => m.type === 'done' && m.id === 'conv');
    const asBob = await fetch(new URL('/conversations/ws-talk?model=stories260K', kit.url), {
      method: 'DELETE',
      headers: { authorization: `Bearer ${BOB}` },
    });
    assert.equal(asBob.status, 404);
    const asAlice = await fetch(new URL('/conversations/ws-talk?model=stories260K', kit.url), {
      method: 'DELETE',
      headers: { authorization: `Bearer ${ALICE}` },
    });
    assert.equal(asAlice.status, 200);
  });

  it('cuts off a request whose client stops reading once its unsent messages pass ws.maxBufferedBytes, not the socket', async () => {
    const c = await open();
    // Large messages (20 alternatives per token) from 16 choices fill the loopback buffers quickly.
    c.ws.pause();
    c.send({
      type: 'generate',
      id: 'flood',
      model: MODEL,
      prompt: 'Once',
      n: 16,
      max_tokens: 400,
      ignore_eos: true,
      n_probs: 20,
    });
    await until(() => kit.kernel.generation.admission.running > 0, 'the flood to start', 20_000);
    await until(() => kit.kernel.generation.admission.running === 0, 'the flood to be cut off', 60_000);
    c.ws.resume();
    const error = await c.next((m) => m.type === 'error' && m.id === 'flood');
    assert.equal((error.error as { code: string }).code, 'slow_reader');
    assert.match((error.error as { message: string }).message, /ws\.maxBufferedBytes/);
    assert.equal(c.of('flood').filter((m) => m.type === 'done').length, 0);
    assert.ok(c.of('flood').filter((m) => m.type === 'token').length < 16 * 400);
    c.send({ type: 'generate', id: 'after', model: MODEL, prompt: 'Once', max_tokens: 3 });
    await c.next((m) => m.type === 'done' && m.id === 'after');
  });
});

describe('admission over /ws: a queue past its high watermark answers an error with retry info', function () {
  this.timeout(120_000);
  it('sheds generations as HTTP does (server_overloaded, retry_after), the admitted ones finish', async function () {
    requireStories(this);
    const kit = await startTestKernel({
      plugins: [pluginDir('api-openai')],
      env: { NUCLEUS_QUEUE_HIGH_WATERMARK: '2', NUCLEUS_QUEUE_LOW_WATERMARK: '1' },
      config: {
        'scheduler.batchWindowMs': 5,
        'scheduler.maxRunning': 1,
      },
    });
    const c = await WsClient.open(kit.url);
    try {
      for (let i = 0; i < 8; i++)
        c.send({ type: 'generate', id: i, model: MODEL, prompt: 'Once', max_tokens: 64, ignore_eos: true });
      const ends = await Promise.all(
        Array.from({ length: 8 }, (_, i) => c.next((m) => m.id === i && (m.type === 'done' || m.type === 'error'))),
      );
      const shed = ends.filter((m) => m.type === 'error');
      assert.ok(shed.length > 0 && shed.length < 8, `${shed.length} of 8 shed`);
      for (const m of shed) {
        assert.equal((m.error as { code: string }).code, 'server_overloaded');
        assert.equal(m.retry_after, 1);
      }
    } finally {
      c.ws.terminate();
      await kit.stop();
    }
  });
});
