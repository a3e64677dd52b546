import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';

interface Answer {
  status: number;
  body: unknown;
}

// Small plain JSON bodies are parsed without the body parser; every answer must be the one the body parser gives.
// `application/vnd.api+json` is a JSON type the body parser reads and the direct path leaves to it: the reference.
describe('small JSON bodies: read directly, answered as the body parser answers them', function () {
  this.timeout(60_000);
  let folder: string;
  let kit: TestKernel;
  before(async () => {
    folder = tempDir('direct-json');
    writePlugin(folder, {
      id: 'svc',
      activate: `ctx.contribute(ExtensionPoints.routes, { method: 'POST', path: '/svc/echo', access: 'public',
        handler: (http) => { const b = http.request.body; return { body: b, proto: Object.getPrototypeOf(b) === Object.prototype || Array.isArray(b) }; } });`,
    });
    kit = await startTestKernel({ plugins: [join(folder, 'svc')], builtinModels: false });
  });
  after(async () => {
    await kit.stop();
    rmSync(folder, { recursive: true, force: true });
  });

  function post(body: Buffer, headers: Record<string, string>): Promise<Answer> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL('/svc/echo', kit.url), {
        method: 'POST',
        headers: { 'content-length': String(body.length), ...headers },
      });
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString()) }),
        );
      });
      req.on('error', reject);
      req.end(body);
    });
  }

  const same = async (body: Buffer, expectStatus: number) => {
    const direct = await post(body, { 'content-type': 'application/json' });
    const reference = await post(body, { 'content-type': 'application/vnd.api+json' });
    assert.deepEqual(direct, reference, `body ${JSON.stringify(body.toString())}`);
    assert.equal(direct.status, expectStatus, `body ${JSON.stringify(body.toString())}`);
    return direct;
  };

  it('parses objects and arrays, with a byte order mark, whitespace and any UTF-8, as the body parser does', async () => {
    await same(Buffer.from('{"a":1,"b":[true,null,"x"]}'), 200);
    await same(Buffer.from(' \n\t[1,2,3] '), 200);
    await same(Buffer.from('\ufeff{"a":1}'), 200);
    await same(Buffer.from('{"é":"ü😀","k":"\\u00e9"}'), 200);
    await same(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d]), 200);
    await same(Buffer.from('{"a":"\\"__proto__\\": 1"}'), 200);
    const ok = await post(Buffer.from('{"a":{"b":2}}'), { 'content-type': 'Application/JSON; charset=UTF-8' });
    assert.deepEqual(ok, { status: 200, body: { body: { a: { b: 2 } }, proto: true } });
  });

  it('refuses a scalar at the top, text that is not JSON, a __proto__ key and deep nesting with the same errors', async () => {
    for (const text of ['1', '"x"', 'null', 'true', ' ', '{"a":', '{"a":1}x', '[1,]', "{'a':1}"]) {
      const answer = await same(Buffer.from(text), 400);
      assert.equal((answer.body as { error: { code: string } }).error.code, 'invalid_json');
    }
    for (const text of ['{"__proto__":{"admin":true}}', '[{"a":{"\\u005f_proto__":1}}]', '{"__pro\\u0074o__" :1}']) {
      const answer = await same(Buffer.from(text), 400);
      assert.match((answer.body as { error: { message: string } }).error.message, /forbidden prototype property/);
    }
    const deep = await same(Buffer.from(`${'['.repeat(300)}${']'.repeat(300)}`), 400);
    assert.equal((deep.body as { error: { code: string } }).error.code, 'json_too_deep');
  });

  it('still reads compressed bodies and other charsets through the body parser', async () => {
    const gz = await post(gzipSync('{"a":1}'), { 'content-type': 'application/json', 'content-encoding': 'gzip' });
    assert.deepEqual(gz, { status: 200, body: { body: { a: 1 }, proto: true } });
    const latin = await post(Buffer.from('{"a":"b"}'), { 'content-type': 'application/json; charset=latin1' });
    assert.deepEqual(latin, { status: 200, body: { body: { a: 'b' }, proto: true } });
  });
});
