import { readFileSync } from 'node:fs';
import { machineInfo } from './machine.js';
import { cpuSeconds, rssMiB } from './http-targets.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { COUNTER, ensureWrk, runWrk, type WrkRequest, type WrkResult } from './wrk.js';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPEATS = Number(process.env.BENCH_PROCESSES_REPEATS ?? 3);
const CONNECTIONS = 64;
const COUNTS = [1, 2];

/** One row of the tabular model, with a feature that differs per request so the prediction cache cannot answer. */
const VARIED_BODY = JSON.stringify({
  inputs: [{ name: 'features', shape: [1, 8], datatype: 'FP32', data: [0.12, -0.5, 1.3, 0, -1.1, 0.7, 0.25, -0.3] }],
}).replace('-0.3]', `-0.${COUNTER}]`);

const ENDPOINTS: Array<{ title: string; request: (url: string) => WrkRequest }> = [
  { title: 'GET /health', request: (url) => ({ url: `${url}/health` }) },
  {
    title: 'POST /v2/models/tabular-classifier/infer, one row as JSON, a different row each time',
    request: (url) => ({ url: `${url}/v2/models/tabular-classifier/infer`, jsonBody: VARIED_BODY }),
  },
];

/** A process and its descendants (the primary, its front processes and their worker processes, if any). */
function tree(pid: number): number[] {
  let children: number[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
  } catch {
    // Not Linux, or gone.
  }
  return [pid, ...children.flatMap(tree)];
}

const sum = (values: Array<number | undefined>) => values.reduce<number>((s, v) => s + (v ?? NaN), 0);

async function start(processes: number): Promise<ServerProcess> {
  const server = await startServerProcess(['--set', `server.processes=${processes}`]);
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await fetch(`${server.url}/ready`).catch(() => undefined);
    await res?.arrayBuffer();
    if (res?.status === 200) return server;
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`server.processes=${processes}: /ready did not answer 200 within 120 s`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

interface Run extends WrkResult {
  cpuMicrosPerRequest: number;
}

async function measure(server: ServerProcess, request: WrkRequest): Promise<Run> {
  const pids = tree(server.pid);
  const before = sum(pids.map(cpuSeconds));
  const result = await runWrk(request, { seconds: SECONDS, connections: CONNECTIONS });
  const after = sum(pids.map(cpuSeconds));
  return { ...result, cpuMicrosPerRequest: ((after - before) * 1e6) / result.requests };
}

const f = (n: number | undefined, digits = 0) => (n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits));
const median = (runs: Run[]) => [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond)[runs.length >> 1]!;

/**
 * `nucleus serve` (built-in models, default config) with `server.processes` 1 and 2 under the same wrk load, in
 * alternating rounds; memory of the whole process tree once ready.
 */
export async function processesSuite(): Promise<string> {
  const missing = ensureWrk();
  if (missing) return `processes suite skipped: ${missing}`;
  const machine = machineInfo();
  const servers = new Map<number, ServerProcess>();
  const memory = new Map<number, { rss: number; pids: number }>();
  const runs = new Map<string, Run[]>();
  try {
    for (const n of COUNTS) {
      const server = await start(n);
      servers.set(n, server);
      await new Promise((r) => setTimeout(r, 3000));
      const pids = tree(server.pid);
      memory.set(n, { rss: sum(pids.map(rssMiB)), pids: pids.length });
    }
    for (const endpoint of ENDPOINTS) {
      for (const [, s] of servers) await runWrk(endpoint.request(s.url), { seconds: 1, connections: CONNECTIONS });
      for (let round = 0; round < REPEATS; round++) {
        for (const [n, s] of servers) {
          const r = await measure(s, endpoint.request(s.url));
          process.stdout.write(`${endpoint.title}, ${n} process(es): ${r.requestsPerSecond.toFixed(0)} req/s\n`);
          runs.set(`${endpoint.title} ${n}`, [...(runs.get(`${endpoint.title} ${n}`) ?? []), r]);
        }
      }
    }
  } finally {
    for (const s of servers.values()) await s.stop();
  }
  const lines = [
    '# processes benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
    `\`nucleus serve\` with its built-in models and default config, \`server.processes\` 1 and 2, under \`wrk -t1 -c${CONNECTIONS} -d${SECONDS}s\` on the same machine (wrk and the server share the cores). Rounds alternate the two servers; the row shows the median run. CPU and memory are summed over the whole process tree (the primary and its front processes).`,
    '',
  ];
  for (const endpoint of ENDPOINTS) {
    lines.push(
      `## ${endpoint.title}`,
      '',
      `| server.processes | req/s (median of ${REPEATS}) | × 1 process | server CPU µs/request | p50 ms | p99 ms | errors | every run, req/s |`,
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    );
    const one = median(runs.get(`${endpoint.title} 1`)!);
    for (const n of COUNTS) {
      const all = runs.get(`${endpoint.title} ${n}`)!;
      const m = median(all);
      lines.push(
        `| ${n} | ${f(m.requestsPerSecond)} | ${f(m.requestsPerSecond / one.requestsPerSecond, 2)} | ${f(m.cpuMicrosPerRequest)} | ${f(m.p50Ms, 2)} | ${f(m.p99Ms, 2)} | ${all.reduce((s, r) => s + r.errors, 0)} | ${all.map((r) => f(r.requestsPerSecond)).join(', ')} |`,
      );
    }
    lines.push('');
  }
  lines.push(
    '## Memory once ready',
    '',
    '| server.processes | processes in the tree | RSS, MiB (sum) |',
    '| ---: | ---: | ---: |',
    ...COUNTS.map((n) => `| ${n} | ${memory.get(n)!.pids} | ${f(memory.get(n)!.rss)} |`),
    '',
  );
  const text = lines.join('\n');
  writeFileSync(fileURLToPath(new URL('../results/processes.md', import.meta.url)), text);
  return text;
}
