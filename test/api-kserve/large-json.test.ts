import { strict as assert } from 'node:assert';
import type { TestKernel } from '@nucleus/sdk/testing';
import { floats } from '../engine/engine-fixtures.js';
import { ADMIN_KEY, healthUnderLoad, startKServe } from './kserve-fixtures.js';

const headers = { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` };

// biome-ignore lint/suspicious/noExplicitAny: a JSON response body that the asserts read field by field
async function post(kit: TestKernel, path: string, body: string | Buffer): Promise<{ status: number; body: any }> {
  const res = await fetch(new URL(path, kit.url), { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A ResNet-sized v2 body (~1.5 MB per image), flat or nested. */
function imageBody(batch: number, seed: number, nested = false): string {
  const values = Array.from(floats(batch * 3 * 224 * 224, seed), (v) => Math.round(v * 1000) / 1000);
  let data: unknown = values;
  if (nested) {
    const rows: number[][] = [];
    for (let i = 0; i < values.length; i += 224) rows.push(values.slice(i, i + 224));
    data = rows;
  }
  return JSON.stringify({ id: 'x', inputs: [{ name: 'input', shape: [batch, 3, 224, 224], datatype: 'FP32', data }] });
}

// Timings here are loose on purpose (2 shared cores, CI noise); real numbers are in the tensor benchmark.
describe('large JSON bodies parsed off the event loop', () => {
  let offloaded: TestKernel;
  let inline: TestKernel;
  before(async () => {
    offloaded = await startKServe({
      'server.offloadJsonBytes': 256 * 1024,
      'server.bodyLimitBytes': 1.5 * 1024 * 1024,
    });
    inline = await startKServe({ 'server.offloadJsonBytes': 0 });
  });
  after(async () => {
    await offloaded?.stop();
    await inline?.stop();
  });

  it('answers a large v2 request with the same outputs as the main-thread parser', async () => {
    for (const nested of [false, true]) {
      const body = imageBody(1, 5, nested);
      assert.ok(body.length > 256 * 1024);
      const a = await post(offloaded, '/v2/models/resnet-tiny/infer', body);
      const b = await post(inline, '/v2/models/resnet-tiny/infer', body);
      assert.equal(a.status, 200, JSON.stringify(a.body));
      assert.equal(b.status, 200, JSON.stringify(b.body));
      assert.deepEqual(a.body.outputs, b.body.outputs);
      assert.equal(a.body.id, 'x');
    }
  });

  it('keeps the route checks: a wrong element or count gives the same 400 as the main-thread parser', async () => {
    const values = Array.from(floats(3 * 224 * 224, 2), (v) => Math.round(v * 1000) / 1000) as unknown[];
    const bad = [...values];
    bad[7] = 'seven';
    for (const [data, shape] of [
      [bad, [1, 3, 224, 224]],
      [values, [1, 3, 224, 223]],
    ] as const) {
      const body = JSON.stringify({ inputs: [{ name: 'input', shape, datatype: 'FP32', data }] });
      const a = await post(offloaded, '/v2/models/resnet-tiny/infer', body);
      const b = await post(inline, '/v2/models/resnet-tiny/infer', body);
      assert.equal(a.status, 400);
      assert.deepEqual(a.body, b.body);
    }
  });

  it('answers 400 invalid_json for large invalid JSON and 413 past server.bodyLimitBytes', async () => {
    const broken = imageBody(1, 3).slice(0, -2);
    const a = await post(offloaded, '/v2/models/resnet-tiny/infer', broken);
    assert.equal(a.status, 400);
    assert.equal(a.body.error.code, 'invalid_json');
    assert.match(a.body.error.message, /^request body is not valid JSON: .+/);
    assert.ok(imageBody(1, 4).length < 1.5 * 1024 * 1024);
    const tooBig = await post(offloaded, '/v2/models/resnet-tiny/infer', imageBody(3, 3));
    assert.equal(tooBig.status, 413);
    assert.match(tooBig.body.error.message, /server\.bodyLimitBytes/);
    const after = await post(offloaded, '/v2/models/resnet-tiny/infer', imageBody(1, 4));
    assert.equal(after.status, 200);
  });

  it('keeps /health quick while 16 clients send large bodies', async () => {
    const body = Buffer.from(imageBody(1, 9));
    const url = new URL('/v2/models/resnet-tiny/infer', offloaded.url);
    const { p50, p99 } = await healthUnderLoad({ base: offloaded.url, url, headers, body, clients: 16, probes: 60 });
    assert.ok(
      p99 < 200,
      `/health p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms with 16 clients sending large bodies`,
    );
  });
});
