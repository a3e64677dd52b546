import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monotonicMicros, type ProfileSummary, summariseProfile } from './cpu-profile.js';
import { startNucleus } from './http-targets.js';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';
import { COUNTER, ensureWrk, runWrk, type WrkRequest } from './wrk.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const BASE = process.env.BENCH_HTTP_BASE;

// A feature differs from request to request, so the model runs rather than the prediction cache answering.
const INFER_BODY = JSON.stringify({
  inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [0.12, -0.5, 1.3, 0, -1.1, 0.7, 0.25, -0.3] }],
}).replace('-0.3]', `-0.${COUNTER}]`);

const LOADS: Array<{ title: string; request: (url: string) => WrkRequest }> = [
  { title: 'GET /health', request: (url) => ({ url: `${url}/health` }) },
  {
    title: 'one-row KServe v2 infer (tabular-classifier), a different row each time',
    request: (url) => ({ url: `${url}/v2/models/tabular-classifier/infer`, jsonBody: INFER_BODY }),
  },
];

/** Profiles the main thread of `nucleus serve` (node --cpu-prof) under one wrk load and summarises it. */
async function profile(
  label: string,
  load: (typeof LOADS)[number],
  checkout?: string,
): Promise<ProfileSummary & { requests: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-prof-'));
  try {
    // Only the main thread: the inference workers are threads with profiles of their own, which are left out.
    const server = await startNucleus(label, checkout, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    let from = 0;
    let to = 0;
    let requests = 0;
    try {
      // A first second warms the JIT up, unmeasured.
      await runWrk(load.request(server.url), { seconds: 1, connections: 64 });
      from = monotonicMicros();
      requests = (await runWrk(load.request(server.url), { seconds: SECONDS, connections: 64 })).requestsPerSecond;
      to = monotonicMicros();
      requests *= (to - from) / 1e6;
    } finally {
      await server.stop();
    }
    const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'));
    // The main thread is the one that was busy while the load ran.
    const summaries = files.map((f) => summariseProfile(join(dir, f), from, to));
    return { ...summaries.sort((a, b) => b.busySamples - a.busySamples)[0]!, requests };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const pct = (share: number) => `${(share * 100).toFixed(1)} %`;

function render(label: string, s: ProfileSummary & { requests: number }): string[] {
  return [
    `### ${label}`,
    '',
    `${Math.round(s.requests)} requests; the main thread was busy ${(s.busyMs / 1000).toFixed(2)} s of the run, ${((s.busyMs * 1000) / s.requests).toFixed(0)} µs per request (sampled, and inflated where other processes compete for the cores).`,
    '',
    '| where (self time) | share |',
    '| --- | ---: |',
    ...s.areas.map((a) => `| ${a.name} | ${pct(a.share)} |`),
    '',
    '| function (self time) | share |',
    '| --- | ---: |',
    ...s.functions.map((a) => `| ${a.name.replace(/\|/g, '\\|')} | ${pct(a.share)} |`),
    '',
  ];
}

/** Where the main thread's time goes under the HTTP suite's loads, with BENCH_HTTP_BASE before and after. */
export async function httpProfileSuite(): Promise<string> {
  const missing = ensureWrk();
  if (missing) {
    const text = `http-profile suite skipped: ${missing}`;
    process.stdout.write(`${text}\n`);
    return text;
  }
  const machine = machineInfo();
  const lines = [
    '# http-profile benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores; Node ${machine.node}. The main thread of \`nucleus serve\` (built-in models, default config) under \`node --cpu-prof\` while \`wrk -t1 -c64 -d${SECONDS}s\` runs; self time as a share of the samples in which the thread was not idle.`,
    '',
  ];
  const data: Record<string, ProfileSummary & { requests: number }> = {};
  for (const load of LOADS) {
    lines.push(`## ${load.title}`, '');
    const runs: Array<[string, string | undefined]> = BASE
      ? [
          ['before (base commit)', BASE],
          ['after', undefined],
        ]
      : [['this checkout', undefined]];
    for (const [label, checkout] of runs) {
      const summary = await profile(label, load, checkout);
      data[`${load.title} ${label}`] = summary;
      lines.push(...render(label, summary));
    }
  }
  return recordDocument('http-profile', lines.join('\n'), { suite: 'http-profile', machine, profiles: data });
}
