import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { SeededRandom } from '@nucleus/sdk';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/run-cli.js';

interface Summary {
  rows: number;
  succeeded: number;
  failed: number;
  resumedFrom: number;
  complete: boolean;
}

const lines = (path: string): string[] => readFileSync(path, 'utf8').trimEnd().split('\n');
// The summary is the last line of stdout (warnings are logged there too).
const summaryOf = (out: string): Summary => JSON.parse(out.trimEnd().split('\n').at(-1)!) as Summary;

describe('nucleus batch run', function () {
  this.timeout(300_000);
  let dir: string;
  let model: string;
  before(async () => {
    dir = tempDir('cli-batch');
    const [m] = await ensureBuiltinModels(join(dir, 'models'), { names: ['tabular-classifier'] });
    model = `tab=${dirname(m!.modelPath)}`;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  // Rows of 8 features; a few broken ones at known places.
  function writeRows(path: string, n: number): void {
    const rng = new SeededRandom(7);
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const features = Array.from({ length: 8 }, () => Math.round(rng.normal(1) * 1000) / 1000);
      if (i === 3) out.push('{"features": [1, 2]}');
      else if (i === 11) out.push('{not json');
      else if (i % 2 === 0) out.push(JSON.stringify({ features }));
      else out.push(JSON.stringify(features));
    }
    writeFileSync(path, `${out.join('\n')}\n`);
  }

  it('writes one line per row in input order, bad rows as error rows, and the job goes on', async () => {
    const input = join(dir, 'small.jsonl');
    const output = join(dir, 'small.out.jsonl');
    writeRows(input, 600);
    const run = await runCli(['batch', 'run', '--model', model, '--input', input, '--output', output, '--json']);
    assert.equal(run.code, 0, run.err);
    const summary = summaryOf(run.out);
    assert.deepEqual(
      { rows: summary.rows, failed: summary.failed, succeeded: summary.succeeded },
      { rows: 600, failed: 2, succeeded: 598 },
    );
    const out = lines(output).map((l) => JSON.parse(l) as { row: number; outputs?: unknown; error?: { code: string } });
    assert.deepEqual(
      out.map((o) => o.row),
      Array.from({ length: 600 }, (_, i) => i),
    );
    assert.equal(out[3]!.error?.code, 'invalid_shape');
    assert.equal(out[11]!.error?.code, 'invalid_json');
    const ok = out[4] as { outputs: { label: number; probabilities: number[] } };
    assert.ok([0, 1, 2].includes(ok.outputs.label));
    assert.ok(Math.abs(ok.outputs.probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-5);
    // The object form and the bare array form of a row give the same answer.
    writeFileSync(
      join(dir, 'pair.jsonl'),
      `${readFileSync(input, 'utf8').split('\n')[4]!}\n[${JSON.parse(readFileSync(input, 'utf8').split('\n')[4]!).features.join(',')}]\n`,
    );
    const pair = await runCli([
      'batch',
      'run',
      '--model',
      model,
      '--input',
      join(dir, 'pair.jsonl'),
      '--output',
      join(dir, 'pair.out.jsonl'),
    ]);
    assert.equal(pair.code, 0, pair.err);
    const [a, b] = lines(join(dir, 'pair.out.jsonl')).map((l) => (JSON.parse(l) as { outputs: unknown }).outputs);
    assert.deepEqual(a, ok.outputs);
    assert.deepEqual(b, ok.outputs);
  });

  it('reads CSV with a header, a short record becoming an error row', async () => {
    const input = join(dir, 'rows.csv');
    const output = join(dir, 'rows.out.jsonl');
    const records = ['age,income,debt,lines,late,years,loan,savings'];
    for (let i = 0; i < 50; i++) records.push(Array.from({ length: 8 }, (_, j) => ((i * 8 + j) % 7) / 3).join(','));
    records.push('1,2,3');
    records.push('"0.5",1,1,1,1,1,1,1');
    writeFileSync(input, `${records.join('\n')}\n`);
    const run = await runCli(['batch', 'run', '--model', model, '--input', input, '--output', output]);
    assert.equal(run.code, 0, run.err);
    const out = lines(output).map((l) => JSON.parse(l) as { row: number; outputs?: unknown; error?: { code: string } });
    assert.equal(out.length, 52);
    assert.equal(out[50]!.error?.code, 'invalid_row');
    assert.ok(out[51]!.outputs, 'a quoted number is a number');
    assert.ok(out.slice(0, 50).every((o) => o.outputs !== undefined));
  });

  it('killed mid-way (SIGKILL) and run again, gives the same output as an uninterrupted run', async () => {
    const input = join(dir, 'big.jsonl');
    writeRows(input, 150_000);
    const whole = join(dir, 'whole.out.jsonl');
    const once = await runCli(['batch', 'run', '--model', model, '--input', input, '--output', whole], {}, 240_000);
    assert.equal(once.code, 0, once.err);

    const resumed = join(dir, 'resumed.out.jsonl');
    const child = spawn(
      process.execPath,
      [CLI, 'batch', 'run', '--model', model, '--input', input, '--output', resumed],
      {
        cwd: REPO_ROOT,
        env: { PATH: process.env.PATH ?? '' },
        stdio: 'ignore',
      },
    );
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    // Killed once some rows are on disk, with no chance to finish what it holds.
    for (let i = 0; i < 6000; i++) {
      let size = 0;
      try {
        size = statSync(resumed).size;
      } catch {}
      if (size > 2 * 1024 * 1024) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill('SIGKILL');
    assert.equal(await exited, null, 'the job was killed, not finished');
    const done = lines(resumed).length;
    assert.ok(done > 0 && done < 150_000, `killed after ${done} rows`);
    // A torn last write: half a line.
    appendFileSync(resumed, '{"row":99999,"outp');

    const again = await runCli(
      ['batch', 'run', '--model', model, '--input', input, '--output', resumed, '--json'],
      {},
      240_000,
    );
    assert.equal(again.code, 0, again.err);
    const summary = summaryOf(again.out);
    assert.equal(summary.resumedFrom, done);
    assert.equal(summary.succeeded + summary.failed, 150_000 - done);
    assert.ok(readFileSync(resumed).equals(readFileSync(whole)), 'resumed output differs from the uninterrupted one');
  });

  it('refuses an unknown model or a missing input with exit code 2', async () => {
    const input = join(dir, 'one.jsonl');
    writeFileSync(input, '[1,2,3,4,5,6,7,8]\n');
    const missing = await runCli([
      'batch',
      'run',
      '--model',
      model,
      '--input',
      join(dir, 'nope.jsonl'),
      '--output',
      join(dir, 'x'),
    ]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /no such file/);
    const unknown = await runCli([
      'batch',
      'run',
      '--model',
      'nope',
      '--input',
      input,
      '--output',
      join(dir, 'y.jsonl'),
    ]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /no model nope is served/);
  });
});
