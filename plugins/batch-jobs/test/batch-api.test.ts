import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI, { NotFoundError, toFile } from 'openai';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const PLUGIN = join(dirname(fileURLToPath(import.meta.url)), '..');
const ALICE = 'alice-key-batch-jobs';
const BOB = 'bob-key-batch-jobs';

const jsonl = (rows: unknown[]): string => `${rows.map((r) => JSON.stringify(r)).join('\n')}\n`;

describe('batch-jobs over HTTP: the OpenAI Batch API and its KServe-style variant', function () {
  this.timeout(240_000);
  let kit: TestKernel;
  let dir: string;
  let alice: OpenAI;
  let bob: OpenAI;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nucleus-batch-api-'));
    kit = await startTestKernel({
      plugins: [PLUGIN],
      config: {
        'plugin.batch-jobs.dir': dir,
        'auth.keys': [
          { key: ALICE, role: 'user', name: 'alice' },
          { key: BOB, role: 'user', name: 'bob' },
        ],
      },
    });
    alice = new OpenAI({ baseURL: new URL('/v1', kit.url).href, apiKey: ALICE, maxRetries: 0 });
    bob = new OpenAI({ baseURL: new URL('/v1', kit.url).href, apiKey: BOB, maxRetries: 0 });
  });
  after(async () => {
    await kit?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function finished(id: string, client = alice): Promise<OpenAI.Batch> {
    for (let i = 0; i < 1200; i++) {
      const batch = await client.batches.retrieve(id);
      if (['completed', 'failed', 'cancelled', 'expired'].includes(batch.status)) return batch;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`batch ${id} did not finish`);
  }

  const chat = (i: number) => ({
    custom_id: `req-${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'tiny-llama', messages: [{ role: 'user', content: `story ${i}` }], max_tokens: 4, temperature: 0 },
  });

  it('runs an uploaded JSONL of chat requests with the openai client, answers in order, a bad line in the error file', async () => {
    const lines: unknown[] = [
      chat(0),
      chat(1),
      { custom_id: 'bad', method: 'POST', url: '/v1/chat/completions', body: { model: 'tiny-llama' } },
      chat(3),
    ];
    const file = await alice.files.create({
      file: await toFile(Buffer.from(jsonl(lines)), 'in.jsonl'),
      purpose: 'batch',
    });
    assert.equal(file.purpose, 'batch');
    const created = await alice.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const batch = await finished(created.id);
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.request_counts, { total: 4, completed: 3, failed: 1 });
    const output = (await (await alice.files.content(batch.output_file_id!)).text()).trimEnd().split('\n');
    const answers = output.map(
      (l) => JSON.parse(l) as { custom_id: string; response: { status_code: number; body: OpenAI.ChatCompletion } },
    );
    assert.deepEqual(
      answers.map((a) => a.custom_id),
      ['req-0', 'req-1', 'req-3'],
    );
    for (const a of answers) {
      assert.equal(a.response.status_code, 200);
      assert.equal(a.response.body.object, 'chat.completion');
      assert.equal(typeof a.response.body.choices[0]!.message.content, 'string');
      assert.ok(a.response.body.usage!.completion_tokens > 0);
    }
    const errors = (await (await alice.files.content(batch.error_file_id!)).text()).trimEnd().split('\n');
    assert.equal(errors.length, 1);
    const error = JSON.parse(errors[0]!) as {
      custom_id: string;
      response: { status_code: number; body: { error: { code: string } } };
    };
    assert.equal(error.custom_id, 'bad');
    assert.equal(error.response.status_code, 400);
  });

  it('another key sees neither the job nor its files (404)', async () => {
    const file = await alice.files.create({
      file: await toFile(Buffer.from(jsonl([chat(0)])), 'mine.jsonl'),
      purpose: 'batch',
    });
    const batch = await alice.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    await assert.rejects(bob.batches.retrieve(batch.id), NotFoundError);
    await assert.rejects(bob.files.retrieve(file.id), NotFoundError);
    await assert.rejects(bob.files.content(file.id), NotFoundError);
    await assert.rejects(bob.batches.cancel(batch.id), NotFoundError);
    await assert.rejects(
      bob.batches.create({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      NotFoundError,
    );
    assert.ok(!(await bob.batches.list()).data.some((b) => b.id === batch.id));
    assert.equal((await finished(batch.id)).status, 'completed');
  });

  it('cancels a running job: it ends cancelled with the rows done so far', async () => {
    const rows = Array.from({ length: 3000 }, (_, i) => ({ ...chat(i), body: { ...chat(i).body, max_tokens: 16 } }));
    const file = await alice.files.create({
      file: await toFile(Buffer.from(jsonl(rows)), 'long.jsonl'),
      purpose: 'batch',
    });
    const created = await alice.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    for (let i = 0; i < 600; i++) {
      const b = await alice.batches.retrieve(created.id);
      if (b.request_counts!.completed > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const cancelling = await alice.batches.cancel(created.id);
    assert.ok(['cancelling', 'cancelled'].includes(cancelling.status), cancelling.status);
    const batch = await finished(created.id);
    assert.equal(batch.status, 'cancelled');
    const done = batch.request_counts!.completed;
    assert.ok(done > 0 && done < 3000, `${done} rows done`);
    const output = (await (await alice.files.content(batch.output_file_id!)).text()).trimEnd().split('\n');
    assert.equal(output.length, done);
    assert.equal((JSON.parse(output.at(-1)!) as { custom_id: string }).custom_id, `req-${done - 1}`);
  });

  it('runs a tensor model over plain rows and v2 requests (POST /v2/models/{m}/batches)', async () => {
    const rows = [
      [0.1, 0.2, 0.3, 0.4],
      { input: [0.5, 0.6, 0.7, 0.8] },
      { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] },
      [1, 2],
    ];
    const file = await alice.files.create({
      file: await toFile(Buffer.from(jsonl(rows)), 'rows.jsonl'),
      purpose: 'batch',
    });
    const auth = { authorization: `Bearer ${ALICE}` };
    const res = await kit.request('/v2/models/mlp-classifier/batches', {
      body: { input_file_id: file.id },
      headers: auth,
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const id = (res.body as { id: string }).id;
    const batch = await finished(id);
    assert.equal(batch.status, 'completed');
    assert.deepEqual(batch.request_counts, { total: 4, completed: 3, failed: 1 });
    const status = await kit.request(`/v2/models/mlp-classifier/batches/${id}`, { headers: auth });
    assert.equal((status.body as { status: string }).status, 'completed');
    const out = (await (await alice.files.content(batch.output_file_id!)).text())
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { row: number; outputs: Record<string, unknown> });
    assert.deepEqual(
      out.map((o) => o.row),
      [0, 1, 2],
    );
    assert.deepEqual(out[2]!.outputs, out[0]!.outputs);
    const unknown = await kit.request('/v2/models/nope/batches', { body: { input_file_id: file.id }, headers: auth });
    assert.equal(unknown.status, 404);
  });
});
