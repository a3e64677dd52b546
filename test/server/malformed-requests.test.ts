import { strict as assert } from 'node:assert';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { type RawAnswer, sendRaw } from '../helpers/raw-http.js';

const USER = 'malformed-user-key-0123456789';

/** The JSON error an answer carries, or a failed assertion saying what came instead. */
function errorOf(answer: RawAnswer): { status: number; type: string; code: string; message: string } {
  assert.equal(answer.kind, 'answer', JSON.stringify(answer));
  if (answer.kind !== 'answer') throw new Error('unreachable');
  assert.match(answer.headers['content-type'] ?? '', /^application\/json/);
  const { error } = JSON.parse(answer.body.toString()) as { error: { type: string; code: string; message: string } };
  return { status: answer.status, ...error };
}

// Each of these was found by the fuzzer (test/server/fuzz.test.ts): Node answered a bare status with no body, dropped
// the connection, or a route answered 500 or held its worker for minutes.
describe('requests Node or a route refused without an error body now get a JSON error', function () {
  this.timeout(60_000);
  let kit: TestKernel;
  let port: number;
  before(async () => {
    kit = await startTestKernel({
      builtinPlugins: true,
      config: { 'auth.keys': [{ key: USER, role: 'user', name: 'alice' }] },
    });
    port = Number(new URL(kit.url).port);
  });
  after(() => kit.stop());
  const send = (head: string) => sendRaw(port, { head: Buffer.from(head, 'latin1') }, 30_000);

  it('a request line or header Node cannot parse gets 400 malformed_request', async () => {
    for (const head of [
      'FOO /health HTTP/1.1\r\nhost: x\r\n\r\n',
      'get /health HTTP/1.1\r\nhost: x\r\n\r\n',
      'GET /health HTTP/1.1\r\nhost: x\r\nbad header\r\n\r\n',
      'POST /health HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n',
      'POST /health HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n',
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
    ]) {
      const error = errorOf(await send(head));
      assert.deepEqual(
        [error.status, error.type, error.code],
        [400, 'invalid_request_error', 'malformed_request'],
        head,
      );
      assert.match(error.message, /not valid HTTP\/1\.1 \(HPE_\w+/, head);
    }
  });

  it('headers larger than Node reads get 431 headers_too_large', async () => {
    const error = errorOf(await send(`GET /health HTTP/1.1\r\nhost: x\r\nx-huge: ${'y'.repeat(20_000)}\r\n\r\n`));
    assert.deepEqual([error.status, error.type, error.code], [431, 'invalid_request_error', 'headers_too_large']);
  });

  it('an HTTP/1.1 request without Host gets 400 missing_host; HTTP/1.0 needs none', async () => {
    const error = errorOf(await send('GET /health HTTP/1.1\r\nconnection: close\r\n\r\n'));
    assert.deepEqual([error.status, error.code], [400, 'missing_host']);
    const old = await send('GET /health HTTP/1.0\r\n\r\n');
    assert.equal(old.kind === 'answer' && old.status, 200);
  });

  it('CONNECT gets 405 instead of a dropped connection', async () => {
    const error = errorOf(await send('CONNECT /v1/models HTTP/1.1\r\nhost: x\r\n\r\n'));
    assert.deepEqual([error.status, error.code], [405, 'method_not_allowed']);
  });

  it('an embeddings request with more than 2048 inputs gets 400, not minutes of work that others wait behind', async () => {
    const auth = { authorization: `Bearer ${USER}` };
    for (const path of ['/v1/embeddings', '/embeddings']) {
      const over = await kit.request(path, {
        headers: auth,
        body: { model: 'bert-tiny', input: Array(2049).fill('x') },
      });
      assert.equal(over.status, 400, JSON.stringify(over.body).slice(0, 300));
      assert.match((over.body as { error: { message: string } }).error.message, /1 to 2048/);
      const ids = await kit.request(path, {
        headers: auth,
        body: { model: 'bert-tiny', input: Array(2049).fill([1]) },
      });
      assert.equal(ids.status, 400, path);
    }
    const most = await kit.request('/v1/embeddings', {
      headers: auth,
      body: { model: 'bert-tiny', input: Array(2048).fill('x') },
    });
    assert.equal(most.status, 200);
    assert.equal((most.body as { data: unknown[] }).data.length, 2048);
  });

  it('a refused text_input is quoted in a few characters, not echoed whole', async () => {
    const res = await kit.request('/v2/models/tiny-llama/generate', {
      headers: { authorization: `Bearer ${USER}` },
      body: { text_input: Array(100_000).fill(0) },
    });
    assert.equal(res.status, 400);
    assert.ok(JSON.stringify(res.body).length < 400, JSON.stringify(res.body).slice(0, 400));
  });

  it('a version no header can carry gets 404, not 500', async () => {
    const res = await kit.request('/v2/models/tiny-llama/versions/%F0%9F%98%80/generate', {
      headers: { authorization: `Bearer ${USER}` },
      body: { text_input: 'hi', parameters: { max_tokens: 1 } },
    });
    assert.equal(res.status, 404, JSON.stringify(res.body));
    assert.equal((res.body as { error: { type: string } }).error.type, 'not_found_error');
  });
});
