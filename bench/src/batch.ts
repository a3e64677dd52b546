// The batch-jobs suite: `nucleus batch run` over a file of tabular rows (rows/s, the process's RSS sampled while it
// runs, and what 10 M rows would take), and interactive latency with and without a server-side job running, the job
// yielding to it or not. BATCH_PARTS=cli or server runs one half.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { loadavg, tmpdir } from 'node:os';
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
// The server's one key, so the job's yield can be switched at run time (`PATCH /admin/config`).
const ADMIN_KEY = 'bench-batch-admin-key';
const AUTH = { authorization: `Bearer ${ADMIN_KEY}` };

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

/**
 * Runs the CLI job, sampling its RSS every 250 ms; the job's samples are `jobStart` (the first once the output had
 * rows) to `jobEnd` (the last before its final write), so start-up and shutdown are told apart.
 */
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
  let jobStart: number | undefined;
  let jobEnd = 0;
  let written = 0;
  const timer = setInterval(() => {
    const rss = rssBytes(child.pid!);
    if (rss === undefined) return;
    samples.push(rss);
    const size = existsSync(output) ? statSync(output).size : 0;
    if (size > written) {
      jobStart ??= samples.length - 1;
      // The sample before: the last growth is the final flush, which the sample may see only as the kernel stops.
      jobEnd = Math.max(jobStart, samples.length - 2);
      written = size;
    }
  }, 250);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearInterval(timer);
  if (code !== 0) throw new Error(`nucleus batch run exited with ${code}`);
  const summary = JSON.parse(out.trimEnd().split('\n').at(-1)!) as { rows: number; seconds: number; failed: number };
  return { summary, samples, jobStart: jobStart ?? 0, jobEnd };
}

async function infer(url: string): Promise<boolean> {
  const body = JSON.stringify({
    inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [0.1, -0.2, 0.3, 0.4, -1, 0.5, 0.2, 0.9] }],
  });
  const res = await fetch(`${url}/v2/models/tabular-classifier/infer`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json', ...AUTH },
  });
  await res.arrayBuffer();
  return res.ok;
}

async function ok<T>(res: Promise<Response>): Promise<T> {
  const r = await res;
  if (!r.ok) throw new Error(`${r.url} answered ${r.status}: ${await r.text()}`);
  return (await r.json()) as T;
}

/** Rows the job has done, as `GET /v1/batches/{id}` reports them (saved every half second while it runs). */
async function jobRows(url: string, id: string): Promise<{ rows: number; status: string }> {
  const batch = await ok<{
    status: string;
    request_counts: { completed: number; failed: number };
  }>(fetch(`${url}/v1/batches/${id}`, { headers: AUTH }));
  return { rows: batch.request_counts.completed + batch.request_counts.failed, status: batch.status };
}

async function setYield(url: string, on: boolean): Promise<void> {
  const res = await fetch(`${url}/admin/config`, {
    method: 'PATCH',
    body: JSON.stringify({ 'plugin.batch-jobs.yieldToInteractive': on }),
    headers: { 'content-type': 'application/json', ...AUTH },
  });
  if (!res.ok) throw new Error(`PATCH /admin/config answered ${res.status}: ${await res.text()}`);
}

/** Job rows/s while `during` runs. */
async function jobRate<T>(url: string, id: string, during: () => Promise<T>) {
  const before = await jobRows(url, id);
  const t = performance.now();
  const result = await during();
  const after = await jobRows(url, id);
  if (after.status !== 'in_progress')
    throw new Error(`the job ended (${after.status}) while it was measured: raise BATCH_ROWS`);
  return { perSecond: (after.rows - before.rows) / ((performance.now() - t) / 1000), result };
}

/**
 * RSS samples (bytes, every 250 ms) as start, peak and end, the slope of a least-squares line over the second half,
 * and the lowest sample of each quarter: the floor the main thread's heap falls back to after each major collection,
 * which is what grows under a leak (the peaks are garbage V8 has not collected yet).
 */
function rssSummary(all: number[], jobStart: number, jobEnd: number): string {
  const samples = all.slice(jobStart, jobEnd + 1);
  const mib = (b: number) => b / 2 ** 20;
  const half = samples.slice(samples.length >> 1).map(mib);
  const n = half.length;
  const xs = half.map((_, i) => (i * 0.25) / 60);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = half.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (half[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  const slope = den > 0 ? num / den : Number.NaN;
  const quarter = Math.max(1, Math.floor(samples.length / 4));
  const floors = [0, 1, 2, 3].map((q) =>
    Math.min(...samples.slice(q * quarter, q === 3 ? samples.length : (q + 1) * quarter).map(mib)).toFixed(0),
  );
  return `RSS of the \`nucleus batch run\` process, sampled every 250 ms: ${mib(all[0]!).toFixed(0)} MiB at its start, ${mib(Math.max(...all.slice(0, jobStart + 1))).toFixed(0)} MiB once the kernel had started and the first rows were written, ${mib(all.at(-1)!).toFixed(0)} MiB at its last sample (shutting down); over the job (${samples.length} samples): start ${mib(samples[0]!).toFixed(0)} MiB, peak ${mib(Math.max(...samples)).toFixed(0)} MiB, end ${mib(samples.at(-1)!).toFixed(0)} MiB; slope over the second half ${slope.toFixed(1)} MiB/min (second half ${Math.min(...half).toFixed(0)}–${Math.max(...half).toFixed(0)} MiB); lowest sample of each quarter ${floors.join(' / ')} MiB.`;
}

export async function batchSuite(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-bench-batch-'));
  const notes: string[] = [];
  const rows: ResultRow[] = [];
  const parts = (process.env.BATCH_PARTS ?? 'cli,server').split(',');
  // Latency beside a job means little on a machine other work is loading: say how loaded it was.
  const load = () => loadavg()[0]!.toFixed(1);
  const loadBefore = load();
  try {
    const input = join(dir, 'rows.jsonl');
    await writeRows(input, ROWS);
    if (parts.includes('cli')) {
      const { summary, samples, jobStart, jobEnd } = await cliJob(input, join(dir, 'out.jsonl'));
      const perSecond = summary.rows / summary.seconds;
      rows.push({
        label: `nucleus batch run, tabular-classifier, ${ROWS} JSONL rows`,
        stats: { ...summarise([], summary.seconds, summary.rows), p50Ms: Number.NaN, p99Ms: Number.NaN },
        note: `10 M rows: ${(1e7 / perSecond / 60).toFixed(1)} min`,
      });
      notes.push(
        rssSummary(samples, jobStart, jobEnd),
        "What the RSS is made of: `nucleus batch run --model tabular-classifier` starts a kernel that opens only that built-in model (one worker thread with its ORT session); after start-up the RSS saws between a floor and the main thread's heap growing with parsed rows and result lines until a major collection empties it. A leak shows as a rising floor (the lowest sample of each quarter above).",
        `At ${Math.round(perSecond)} rows/s, 10 M rows take ${(1e7 / perSecond / 60).toFixed(1)} min (goal: under 5 min on 2 cores).`,
      );
    }
    if (parts.includes('server')) await serverJob(input, join(dir, 'jobs'), rows, notes);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push(`One-minute load average of the machine: ${loadBefore} before the suite, ${load()} after it.`);
  return record('batch', machineInfo(), [{ title: 'Batch jobs', unit: 'rows or requests', rows }], notes);
}

// Interactive latency on one server: alone, then beside a job over the same file that does not yield to it (the
// queue's priority only) and one that does (`plugin.batch-jobs.yieldToInteractive`, switched at run time), with the
// job's rows/s alone and under each.
async function serverJob(input: string, jobs: string, rows: ResultRow[], notes: string[]): Promise<void> {
  const server = await startServerProcess([...SETTINGS, '--set', `plugin.batch-jobs.dir=${jobs}`], {
    NUCLEUS_ADMIN_KEY: ADMIN_KEY,
  });
  try {
    const interactive = () => closedLoop(() => infer(server.url), 4, SECONDS);
    await interactive();
    const alone = await interactive();
    rows.push({ label: 'interactive /v2 infer, 4 clients, no job', stats: alone, ratio: 1 });
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob([readFileSync(input)]), 'rows.jsonl');
    const file = await ok<{ id: string }>(
      fetch(`${server.url}/v1/files`, { method: 'POST', body: form, headers: AUTH }),
    );
    const job = await ok<{ id: string }>(
      fetch(`${server.url}/v2/models/tabular-classifier/batches`, {
        method: 'POST',
        body: JSON.stringify({ input_file_id: file.id }),
        headers: { 'content-type': 'application/json', ...AUTH },
      }),
    );
    await new Promise((r) => setTimeout(r, 1000));
    const jobAlone = await jobRate(server.url, job.id, () => new Promise((r) => setTimeout(r, SECONDS * 1000)));
    rows.push({
      label: 'server job, tabular-classifier, no interactive traffic',
      stats: { ...summarise([], 1, jobAlone.perSecond), p50Ms: Number.NaN, p99Ms: Number.NaN },
    });
    // Twice each, alternating, so that a change in the machine's other load shows as a difference between repeats.
    for (const yieldOn of [false, true, false, true]) {
      await setYield(server.url, yieldOn);
      const during = await jobRate(server.url, job.id, interactive);
      const how = yieldOn ? 'yielding (default)' : 'not yielding (queue priority only)';
      rows.push({
        label: `interactive /v2 infer, 4 clients, a job running, ${how}`,
        stats: during.result,
        ratio: during.result.throughput / alone.throughput,
        note: `the job meanwhile: ${Math.round(during.perSecond)} rows/s (${((during.perSecond / jobAlone.perSecond) * 100).toFixed(0)} % of its rate alone)`,
      });
    }
    await fetch(`${server.url}/v1/batches/${job.id}/cancel`, { method: 'POST', headers: AUTH });
    notes.push(
      `Server job: a KServe-style job (\`POST /v2/models/tabular-classifier/batches\`) over the same ${ROWS} rows; interactive clients are closed loops of one-row \`/v2/models/tabular-classifier/infer\` requests for ${SECONDS} s each, after a ${SECONDS} s warm-up. The job's rows/s come from \`request_counts\`, which it saves every half second. \`plugin.batch-jobs.yieldToInteractive\` is switched with \`PATCH /admin/config\` between the runs beside the job (off, on, off, on).`,
    );
  } finally {
    await server.stop();
  }
}
