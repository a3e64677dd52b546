import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { appendFileSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SeededRandom } from '@nucleus/sdk';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { tempDir } from '../helpers/paths.js';
import { followServer, spawnServe, stopServer } from '../helpers/server-child.js';

const ROWS = 120_000;

interface Batch {
  id: string;
  status: string;
  output_file_id: string | null;
  error_file_id: string | null;
  request_counts: { total: number; completed: number; failed: number };
}

describe('a server killed (SIGKILL) while a batch job runs', function () {
  this.timeout(300_000);
  let dir: string;
  let model: string;
  let input: string;
  before(async () => {
    dir = tempDir('batch-restart');
    const [m] = await ensureBuiltinModels(join(dir, 'models'), { names: ['tabular-classifier'] });
    model = `tab=${dirname(m!.modelPath)}`;
    // Rows of 8 features, with a few that fail at known places so the error file is checked too.
    const rng = new SeededRandom(11);
    const lines: string[] = [];
    for (let i = 0; i < ROWS; i++) {
      if (i % 10_007 === 5) lines.push('{"features": [1, 2]}');
      else lines.push(JSON.stringify(Array.from({ length: 8 }, () => Math.round(rng.normal(1) * 1000) / 1000)));
    }
    input = join(dir, 'rows.jsonl');
    writeFileSync(input, `${lines.join('\n')}\n`);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const serve = (state: string): ChildProcess =>
    spawnServe(model, {
      NUCLEUS_LOGGING_LEVEL: 'warn',
      NUCLEUS_PLUGIN_BATCH_JOBS_DIR: state,
      NUCLEUS_PLUGINS_DISABLED: 'tracing,alerts',
    });

  async function upload(url: string): Promise<string> {
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([readFileSync(input)]), 'rows.jsonl');
    const res = await fetch(`${url}/v1/files`, { method: 'POST', body: form });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { id: string }).id;
  }

  async function createJob(url: string, fileId: string): Promise<string> {
    const res = await fetch(`${url}/v2/models/tab/batches`, {
      method: 'POST',
      body: JSON.stringify({ input_file_id: fileId }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 200, await res.clone().text());
    return ((await res.json()) as { id: string }).id;
  }

  async function finished(url: string, id: string): Promise<Batch> {
    for (let i = 0; i < 2400; i++) {
      const batch = (await (await fetch(`${url}/v1/batches/${id}`)).json()) as Batch;
      if (['completed', 'failed', 'cancelled'].includes(batch.status)) return batch;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`batch ${id} did not finish`);
  }

  const content = async (url: string, fileId: string | null): Promise<string> =>
    fileId === null ? '' : (await fetch(`${url}/v1/files/${fileId}/content`)).text();

  it('resumes the job on the next start and its output equals an uninterrupted run, no row twice, none lost', async () => {
    const state = join(dir, 'state');
    const first = serve(state);
    const exited = new Promise<number | null>((r) => first.on('exit', (code) => r(code)));
    let jobId: string;
    let results: string;
    try {
      const url = await followServer(first).url;
      jobId = await createJob(url, await upload(url));
      results = join(state, 'batches', `${jobId}.results.jsonl`);
      // Killed once some rows are on disk, with no chance to finish or checkpoint what it holds.
      for (let i = 0; i < 6000; i++) {
        let size = 0;
        try {
          size = statSync(results).size;
        } catch {}
        if (size > 2 * 1024 * 1024) break;
        await new Promise((r) => setTimeout(r, 20));
      }
    } finally {
      first.kill('SIGKILL');
    }
    assert.equal(await exited, null, 'the server was killed');
    const done = readFileSync(results).toString().split('\n').length - 1;
    assert.ok(done > 0 && done < ROWS, `killed after ${done} rows`);
    // A torn last write: half a line, which the resume must cut.
    appendFileSync(results, '{"row":99999,"outp');
    assert.ok(
      readdirSync(join(state, 'batches')).includes(`${jobId}.json`),
      'the job is recorded for the next start to find',
    );

    const second = serve(state);
    try {
      const url = await followServer(second).url;
      const resumed = await finished(url, jobId);
      assert.equal(resumed.status, 'completed', JSON.stringify(resumed));
      // The same file again, uninterrupted, on the same server: the reference.
      const whole = await finished(url, await createJob(url, await upload(url)));
      assert.equal(whole.status, 'completed');
      assert.deepEqual(resumed.request_counts, whole.request_counts);
      assert.deepEqual(whole.request_counts, { total: ROWS, completed: ROWS - 12, failed: 12 });
      const [out, errors, wholeOut, wholeErrors] = await Promise.all([
        content(url, resumed.output_file_id),
        content(url, resumed.error_file_id),
        content(url, whole.output_file_id),
        content(url, whole.error_file_id),
      ]);
      // Every row exactly once, in order, across the two files.
      const rows = [...out.trimEnd().split('\n'), ...errors.trimEnd().split('\n')]
        .map((l) => (JSON.parse(l) as { row: number }).row)
        .sort((a, b) => a - b);
      assert.equal(rows.length, ROWS);
      assert.ok(
        rows.every((r, i) => r === i),
        'a row is missing or written twice',
      );
      assert.ok(out === wholeOut, 'the resumed output differs from the uninterrupted one');
      assert.equal(errors, wholeErrors);
    } finally {
      await stopServer(second);
    }
  });
});
