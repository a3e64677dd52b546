import { type HttpTarget, cpuSeconds, rssMiB, startNucleus, startPeer } from './http-targets.js';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';
import { COUNTER, ensureWrk, runWrk, type WrkRequest, type WrkResult } from './wrk.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPEATS = Number(process.env.BENCH_HTTP_REPEATS ?? 3);
const CONNECTIONS = 64;
/** A built checkout of the commit to compare with (`npm ci` run in it): its rows are the "before" ones. */
const BASE = process.env.BENCH_HTTP_BASE;

/** One row of the tabular model's features, already standardised, as a KServe v2 request. */
const INFER_BODY = JSON.stringify({
  inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [0.12, -0.5, 1.3, 0, -1.1, 0.7, 0.25, -0.3] }],
});
/** The same with a feature that differs from request to request, so the prediction cache cannot answer. */
const VARIED_BODY = INFER_BODY.replace('-0.3]', `-0.${COUNTER}]`);
const INFER_PATH = '/v2/models/tabular-classifier/infer';

const ENDPOINTS: Array<{ title: string; request: (url: string) => WrkRequest }> = [
  {
    title: 'GET /health',
    request: (url) => ({ url: `${url}/health` }),
  },
  {
    title: `POST ${INFER_PATH}, one row as JSON, a different row each time (the model runs)`,
    request: (url) => ({ url: `${url}${INFER_PATH}`, jsonBody: VARIED_BODY }),
  },
  {
    title: `POST ${INFER_PATH}, one row as JSON, the same row each time (the prediction cache answers)`,
    request: (url) => ({ url: `${url}${INFER_PATH}`, jsonBody: INFER_BODY }),
  },
];

/** A wrk run and the CPU time the server spent on it (all its threads), per request. */
interface Run extends WrkResult {
  cpuMicrosPerRequest: number;
}

interface Measured {
  target: string;
  runs: Run[];
  median: Run;
  medianCpu: number;
}

function median(runs: Run[]): Run {
  const sorted = [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

function medianOf(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

/** One measured wrk run, with the server's CPU seconds read before and after it. */
async function measure(t: HttpTarget, request: WrkRequest): Promise<Run> {
  const before = cpuSeconds(t.pid);
  const result = await runWrk(request, { seconds: SECONDS, connections: CONNECTIONS });
  const after = cpuSeconds(t.pid);
  const cpu = before === undefined || after === undefined ? NaN : ((after - before) * 1e6) / result.requests;
  return { ...result, cpuMicrosPerRequest: cpu };
}

const f = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));

function table(title: string, rows: Measured[]): string[] {
  const ref = (label: string) => rows.find((r) => r.target === label);
  const koa = ref('bare Koa');
  const node = ref('bare node:http');
  const ratio = (m: Measured, to: Measured | undefined) =>
    to
      ? `${f(m.median.requestsPerSecond / to.median.requestsPerSecond, 2)} (${f(to.medianCpu / m.medianCpu, 2)})`
      : '–';
  return [
    `## ${title}`,
    '',
    `| run | req/s (median of ${REPEATS}) | × bare Koa (by CPU) | × bare node:http (by CPU) | server CPU µs/request | p50 ms | p99 ms | errors | every run, req/s |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map(
      (m) =>
        `| ${m.target} | ${f(m.median.requestsPerSecond)} | ${ratio(m, koa)} | ${ratio(m, node)} | ${f(m.medianCpu)} | ${f(m.median.p50Ms, 2)} | ${f(m.median.p99Ms, 2)} | ${m.runs.reduce((s, r) => s + r.errors, 0)} | ${m.runs.map((r) => f(r.requestsPerSecond)).join(', ')} |`,
    ),
    '',
  ];
}

/** Idle memory and CPU of a fresh `nucleus serve`: RSS once ready, then CPU over 10 s starting 2 s after a burst. */
async function idle(label: string, checkout?: string): Promise<string> {
  const server = await startNucleus(label, checkout);
  try {
    await new Promise((r) => setTimeout(r, 5000));
    const rss = rssMiB(server.pid);
    await runWrk({ url: `${server.url}/health` }, { seconds: 3, connections: CONNECTIONS });
    const rssAfter = rssMiB(server.pid);
    await new Promise((r) => setTimeout(r, 2000));
    const before = cpuSeconds(server.pid);
    await new Promise((r) => setTimeout(r, 10_000));
    const after = cpuSeconds(server.pid);
    const cpu = before === undefined || after === undefined ? undefined : ((after - before) / 10) * 100;
    return `| ${label} | ${f(rss)} | ${f(rssAfter)} | ${f(cpu, 2)} |`;
  } finally {
    await server.stop();
  }
}

/**
 * The HTTP path against a bare node:http server and a bare Koa app answering the same JSON, measured with wrk in one
 * run; with BENCH_HTTP_BASE, the same rows for a base checkout ("before"). Then idle memory and CPU.
 */
export async function httpSuite(): Promise<string> {
  const missing = ensureWrk();
  if (missing) {
    const text = `http suite skipped: ${missing}`;
    process.stdout.write(`${text}\n`);
    return text;
  }
  const machine = machineInfo();
  const targets: HttpTarget[] = [];
  const results = new Map<string, Map<string, Run[]>>();
  try {
    targets.push(await startPeer('node'), await startPeer('koa'));
    if (BASE) targets.push(await startNucleus('Nucleus before (base commit)', BASE));
    targets.push(await startNucleus(BASE ? 'Nucleus after' : 'Nucleus'));
    for (const endpoint of ENDPOINTS) {
      const byTarget = new Map<string, Run[]>();
      results.set(endpoint.title, byTarget);
      // JIT warm-up, unmeasured.
      for (const t of targets) await runWrk(endpoint.request(t.url), { seconds: 1, connections: CONNECTIONS });
      // Rounds alternate the targets, so a slow spell of the shared machine falls on all of them alike.
      for (let round = 0; round < REPEATS; round++) {
        for (const t of targets) {
          const result = await measure(t, endpoint.request(t.url));
          process.stdout.write(`${endpoint.title} ${t.label}: ${result.requestsPerSecond.toFixed(0)} req/s\n`);
          byTarget.set(t.label, [...(byTarget.get(t.label) ?? []), result]);
        }
      }
    }
  } finally {
    for (const t of targets) await t.stop();
  }

  const lines = [
    '# http benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
    `\`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s\` on the same machine as the server (the load generator and the server share the cores). Every server runs in a process of its own; the rounds alternate between them and the row shows the median run. The bare servers answer \`{"status":"ok"}\` on \`GET /health\` and, to any POST, parse the JSON body and send it back. The ratios compare throughput; in brackets, the inverse ratio of the CPU time the server processes spent per request (all their threads, from /proc), which other work on a shared machine disturbs less. Nucleus runs \`nucleus serve\` with its built-in models and default config: request ids, request logging, events, tracing spans, metrics and the body parser all on.`,
    '',
  ];
  for (const endpoint of ENDPOINTS) {
    const byTarget = results.get(endpoint.title)!;
    lines.push(
      ...table(
        endpoint.title,
        [...byTarget].map(([target, runs]) => ({
          target,
          runs,
          median: median(runs),
          medianCpu: medianOf(runs.map((r) => r.cpuMicrosPerRequest)),
        })),
      ),
    );
  }

  lines.push(
    '## Idle',
    '',
    'A fresh `nucleus serve` with its built-in models: resident memory 5 s after it is ready and after a 3 s burst of `/health`, then CPU over 10 s starting 2 s after the burst.',
    '',
    '| run | RSS when ready, MiB | RSS after a burst, MiB | idle CPU after the burst, % of a core |',
    '| --- | ---: | ---: | ---: |',
  );
  if (BASE) lines.push(await idle('Nucleus before (base commit)', BASE));
  lines.push(await idle(BASE ? 'Nucleus after' : 'Nucleus'), '');
  const markdown = lines.join('\n');
  return recordDocument('http', markdown, {
    suite: 'http',
    machine,
    results: Object.fromEntries([...results].map(([k, v]) => [k, Object.fromEntries(v)])),
  });
}
