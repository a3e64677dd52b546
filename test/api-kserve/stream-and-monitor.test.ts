import { strict as assert } from 'node:assert';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { ADMIN_KEY, API_KSERVE, call } from './kserve-fixtures.js';

interface SseEvent {
  event: string;
  data: Record<string, unknown>;
}

function parseSse(text: string): SseEvent[] {
  return text
    .split('\n\n')
    .filter((frame) => frame.trim())
    .map((frame) => {
      const lines = frame.split('\n');
      const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
      const data = lines.find((l) => l.startsWith('data: '))!.slice(6);
      return { event, data: JSON.parse(data) as Record<string, unknown> };
    });
}

const row = (x: number) => ({ model: 'mlp-classifier', inputs: { input: [[x, 0.2, 0.3, 0.4]] } });

describe('api-kserve: /stream_infer and the monitors', () => {
  let kit: TestKernel;
  before(async () => {
    // The GPU backend plugins are loaded so /monitor/gpu has probes to report (and, here, reasons).
    const gpuBackends = ['backend-cuda', 'backend-rocm'].map((p) => join(REPO_ROOT, 'plugins', p));
    kit = await startTestKernel({ plugins: [API_KSERVE, ...gpuBackends], env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY } });
  });
  after(() => kit.stop());

  it('streams one event per item as each finishes, failing items alone, then done', async () => {
    const res = await fetch(`${kit.url}/stream_infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` },
      body: JSON.stringify({
        requests: [row(0.1), { model: 'nope', inputs: { input: [[1]] } }, row(0.5), { model: 'mlp-classifier' }],
      }),
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /text\/event-stream/);
    const events = parseSse(await res.text());
    const items = events.filter((e) => e.event === 'message');
    assert.equal(events.at(-1)!.event, 'done');
    assert.deepEqual(events.at(-1)!.data, { count: 4, failed: 2 });
    assert.deepEqual(items.map((e) => e.data.index).sort(), [0, 1, 2, 3]);
    const byIndex = new Map(items.map((e) => [e.data.index as number, e.data]));
    assert.equal(byIndex.get(0)!.status, 200);
    assert.deepEqual((byIndex.get(0)!.outputs as Record<string, unknown>) !== undefined, true);
    assert.equal(byIndex.get(1)!.status, 404);
    assert.equal((byIndex.get(1)!.error as { code: string }).code, 'model_not_found');
    assert.equal(byIndex.get(3)!.status, 400);
    // The same item answered by /infer carries the same outputs.
    const single = await call(kit, '/infer', { body: row(0.5) });
    assert.deepEqual(byIndex.get(2)!.outputs, (single.body as { outputs: unknown }).outputs);
  });

  it('answers a bad stream body with a plain 400 before any event', async () => {
    const res = await call(kit, '/stream_infer', { body: { requests: [] } });
    assert.equal(res.status, 400);
  });

  it('stops the remaining items when the client goes away', async () => {
    const body = JSON.stringify({
      requests: Array.from({ length: 60 }, (_, i) => ({
        model: 'resnet-tiny',
        inputs: { input: { data: new Array(3 * 224 * 224).fill(i / 64), shape: [1, 3, 224, 224] } },
      })),
    });
    const before = statusRequests(await call(kit, '/status'));
    await new Promise<void>((resolve, reject) => {
      const req = httpRequest(
        `${kit.url}/stream_infer`,
        { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_KEY}` } },
        (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        },
      );
      req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
      req.end(body);
    });
    await new Promise((r) => setTimeout(r, 1500));
    const after = statusRequests(await call(kit, '/status'));
    assert.ok(after - before < 60, `only ${after - before} of 60 items should have run after the disconnect`);
  });

  it('GET /monitor/gpu lists no device here and says why each GPU backend is unusable', async () => {
    const res = await call(kit, '/monitor/gpu');
    assert.equal(res.status, 200);
    const body = res.body as {
      devices: unknown[];
      backends: Array<{ backend: string; usable: boolean; reason?: string }>;
    };
    assert.deepEqual(body.devices, []);
    assert.deepEqual(body.backends.map((b) => b.backend).sort(), ['cuda', 'rocm']);
    for (const b of body.backends) {
      assert.notEqual(b.backend, 'cpu');
      if (!b.usable) assert.ok(b.reason, `${b.backend} gives a reason`);
    }
  });

  it('GET /monitor/memory reports host, process and each loaded model version', async () => {
    const res = await call(kit, '/monitor/memory');
    assert.equal(res.status, 200);
    const body = res.body as {
      host: { totalBytes: number; freeBytes: number };
      process: { rssBytes: number; heapUsedBytes: number };
      models: Array<{ name: string; version: string; modelFileBytes?: number; estimatedBytes?: number }>;
    };
    assert.ok(body.host.totalBytes > body.host.freeBytes && body.host.freeBytes > 0);
    assert.ok(body.process.rssBytes > body.process.heapUsedBytes);
    const mlp = body.models.find((m) => m.name === 'mlp-classifier');
    assert.ok(
      mlp && mlp.modelFileBytes! > 0 && mlp.estimatedBytes! >= mlp.modelFileBytes!,
      JSON.stringify(body.models),
    );
  });
});

function statusRequests(res: { body: unknown }): number {
  const models = (res.body as { models: Array<{ name: string; versions: Array<{ requests?: { total: number } }> }> })
    .models;
  return models.find((m) => m.name === 'resnet-tiny')!.versions.reduce((n, v) => n + (v.requests?.total ?? 0), 0);
}
