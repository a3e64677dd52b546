// The batch-jobs suite: `nucleus batch run` over a file of tabular rows (rows/s, the process's RSS sampled while it
// runs, and what 10 M rows would take), and the p99 of interactive requests with and without a server-side job running.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './machine.js';
import { record, type ResultRow } from './report.js';
import { startServerProcess } from './server-process.js';
import { closedLoop, summarise } from './stats.js';

const ROWS = Number(process.env.BATCH_ROWS ?? 1_000_000);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLI = fileURLToPath(new URL('../../core/dist/cli/main.js', import.meta.url));
const SETTINGS = ['--set', 'plugins.disabled=tracing,alerts'];

async function writeRows(path: string, n: number): Promise<void> {
  const out = createWriteStream(path);
  let seed = 1;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) * 4 - 2;
  for (let i = 0; i < n; i++) {
    const line = `[${Array.from({ length: 8 }, () => next().toFixed(3)).join(',')}]\n`;
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'close');
}

function rssBytes(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** Runs the CLI job, sampling its RSS every 250 ms. */
async function cliJob(input: string, output: string) {
  const child = spawn(
    process.execPath,
    [
      CLI,
      'batch',
      'run',
      '--model',
      'tabular-classifier',
      '--input',
      input,
      '--output',
      output,
      '--restart',
      '--json',
      ...SETTINGS,
    ],
    { env: { PATH: process.env.PATH ?? '' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const samples: number[] = [];
  const timer = setInterval(() => {
    const rss = rssBytes(child.pid!);
    if (rss !== undefined) samples.push(rss);
  }, 250);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(timer);
  if (code !== 0) throw new Error(`nucleus batch run exited with ${code}`);
  const summary = JSON.parse(out.trimEnd().split('\n').at(-1)!) as { rows: number; seconds: number; failed: number };
  return { summary, samples };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[sorted.length >> 1] ?? Number.NaN;
}

async function infer(url: string): Promise<boolean> {
  const body = JSON.stringify({
    inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [0.1, -0.2, 0.3, 0.4, -1, 0.5, 0.2, 0.9] }],
  });
  const res = await fetch(`${url}/v2/models/tabular-classifier/infer`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  await res.arrayBuffer();
  return res.ok;
}

export async function batchSuite(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-bench-batch-'));
  const notes: string[] = [];
  const rows: ResultRow[] = [];
  try {
    const input = join(dir, 'rows.jsonl');
    await writeRows(input, ROWS);
    const { summary, samples } = await cliJob(input, join(dir, 'out.jsonl'));
    const perSecond = summary.rows / summary.seconds;
    rows.push({
      label: `nucleus batch run, tabular-classifier, ${ROWS} JSONL rows`,
      stats: { ...summarise([], summary.seconds, summary.rows), p50Ms: Number.NaN, p99Ms: Number.NaN },
      note: `10 M rows: ${(1e7 / perSecond / 60).toFixed(1)} min`,
    });
    const steady = samples.slice(Math.floor(samples.length / 5));
    const mib = (b: number) => (b / 2 ** 20).toFixed(0);
    notes.push(
      `RSS of the batch process, sampled every 250 ms after the first fifth of the run: ${mib(Math.min(...steady))}–${mib(Math.max(...steady))} MiB; median of the first half of those samples ${mib(median(steady.slice(0, steady.length >> 1)))} MiB, of the second half ${mib(median(steady.slice(steady.length >> 1)))} MiB (flat when they are close; ${samples.length} samples).`,
      `At ${Math.round(perSecond)} rows/s, 10 M rows take ${(1e7 / perSecond / 60).toFixed(1)} min (goal: under 5 min on 2 cores).`,
    );

    // Interactive p99 on one server, first alone, then while a KServe-style job over the same file runs.
    const server = await startServerProcess([...SETTINGS, '--set', `plugin.batch-jobs.dir=${join(dir, 'jobs')}`]);
    try {
      const alone = await closedLoop(() => infer(server.url), 4, SECONDS);
      rows.push({ label: 'interactive /v2 infer, 4 clients, no job', stats: alone, ratio: 1 });
      const form = new FormData();
      form.append('purpose', 'batch');
      form.append('file', new Blob([readFileSync(input)]), 'rows.jsonl');
      const file = (await (await fetch(`${server.url}/v1/files`, { method: 'POST', body: form })).json()) as {
        id: string;
      };
      const job = (await (
        await fetch(`${server.url}/v2/models/tabular-classifier/batches`, {
          method: 'POST',
          body: JSON.stringify({ input_file_id: file.id }),
          headers: { 'content-type': 'application/json' },
        })
      ).json()) as { id: string };
      await new Promise((r) => setTimeout(r, 500));
      const during = await closedLoop(() => infer(server.url), 4, SECONDS);
      const status = (await (await fetch(`${server.url}/v1/batches/${job.id}`)).json()) as {
        request_counts: { completed: number };
      };
      await fetch(`${server.url}/v1/batches/${job.id}/cancel`, { method: 'POST' });
      rows.push({
        label: 'interactive /v2 infer, 4 clients, a batch job running',
        stats: during,
        ratio: during.throughput / alone.throughput,
        note: `the job had done ${status.request_counts.completed} rows`,
      });
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return record('batch', machineInfo(), [{ title: 'Batch jobs', unit: 'rows or requests', rows }], notes);
}
