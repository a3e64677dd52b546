import assert from 'node:assert/strict';
import { request as httpRequest, type ClientRequest } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..');
// The interactive requests are KServe v2 inference requests.
const KSERVE = join(PLUGIN, '..', 'api-kserve');
const CHUNK = 16;
const ROWS = 2000;

interface Batch {
  status: string;
  request_counts: { total: number; completed: number; failed: number };
}

describe('batch-jobs yield to interactive requests', function () {
  this.timeout(240_000);
  let kit: TestKernel;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nucleus-batch-yield-'));
    kit = await startTestKernel({
      plugins: [PLUGIN, KSERVE],
      config: {
        'plugin.batch-jobs.dir': dir,
        'plugin.batch-jobs.chunkRows': CHUNK,
        // Long enough that a job held back by an open request never goes on its own during the test.
        'plugin.batch-jobs.yieldMaxWaitMs': 60_000,
      },
    });
  });
  after(async () => {
    await kit?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function startJob(): Promise<string> {
    const rows = Array.from({ length: ROWS }, (_, i) => `[${[i % 7, 1, 2, 3].map((v) => v / 10).join(',')}]`);
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([`${rows.join('\n')}\n`]), 'rows.jsonl');
    const file = (await (await fetch(`${kit.url}/v1/files`, { method: 'POST', body: form })).json()) as { id: string };
    const res = await kit.request('/v2/models/mlp-classifier/batches', { body: { input_file_id: file.id } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body as { id: string }).id;
  }

  const job = async (id: string): Promise<Batch> => (await kit.request(`/v1/batches/${id}`)).body as Batch;

  async function finished(id: string): Promise<Batch> {
    for (let i = 0; i < 2400; i++) {
      const batch = await job(id);
      if (['completed', 'failed', 'cancelled'].includes(batch.status)) return batch;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`batch ${id} did not finish`);
  }

  // An interactive request whose client sends its body slowly: in flight on the server until `finish` is called.
  async function slowRequest(): Promise<{ finish(): Promise<number> }> {
    const seen = new Promise<void>((resolve) => {
      const off = kit.kernel.events.on('request.start', (e) => {
        if (e.path !== '/v2/models/mlp-classifier/infer') return;
        off();
        resolve();
      });
    });
    const body = JSON.stringify({
      inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }],
    });
    const req: ClientRequest = httpRequest(`${kit.url}/v2/models/mlp-classifier/infer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const answered = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
    });
    req.write(body.slice(0, 10));
    await seen;
    return {
      finish: () => {
        req.end(body.slice(10));
        return answered;
      },
    };
  }

  it('a job started while an interactive request is in flight runs one chunk, then waits for it to end', async () => {
    const held = await slowRequest();
    const id = await startJob();
    let batch = await job(id);
    for (let i = 0; i < 600 && batch.status !== 'in_progress'; i++) {
      await new Promise((r) => setTimeout(r, 50));
      batch = await job(id);
    }
    // Its first chunk may run (read before the job looks at the traffic); unheld, the rest would take well under this.
    await new Promise((r) => setTimeout(r, 1500));
    batch = await job(id);
    assert.equal(batch.status, 'in_progress');
    assert.ok(batch.request_counts.completed <= CHUNK, `${batch.request_counts.completed} rows ran beside the request`);
    assert.equal(await held.finish(), 200);
    const done = await finished(id);
    assert.equal(done.status, 'completed');
    assert.deepEqual(done.request_counts, { total: ROWS, completed: ROWS, failed: 0 });
  });

  it('with yieldToInteractive off, the same job runs to its end beside the open request', async () => {
    kit.kernel.config.patch({ 'plugin.batch-jobs.yieldToInteractive': false }, { kind: 'runtime', name: 'test' });
    try {
      const held = await slowRequest();
      const done = await finished(await startJob());
      assert.deepEqual(done.request_counts, { total: ROWS, completed: ROWS, failed: 0 });
      assert.equal(await held.finish(), 200);
    } finally {
      kit.kernel.config.patch({ 'plugin.batch-jobs.yieldToInteractive': true }, { kind: 'runtime', name: 'test' });
    }
  });
});
