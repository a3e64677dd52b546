// The caches suite: the prediction cache's throughput with hits against the same requests run every time, and the
// LLM prefix cache across a restart (cache.prefix.persist): TTFT of long shared prefixes cold, warm and after a restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './machine.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { closedLoop, quantile, type RunStats } from './stats.js';
import { streamGenerate } from './streams.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const STORIES = fileURLToPath(new URL('../../plugins/builtin-models/models/stories260K.gguf', import.meta.url));
const SETTINGS = ['--set', 'plugins.disabled=tracing,alerts', '--set', 'scheduler.batchWindowMs=2'];

/** POSTs `body` and counts the answer only when it is 200 and the prediction cache says `expect`. */
async function post(url: string, body: string, expect: 'HIT' | 'BYPASS', headers: Record<string, string> = {}) {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  await res.arrayBuffer();
  return res.ok && res.headers.get('x-prediction-cache') === expect;
}

/** The same request by `clients` clients, once run every time (`no-cache`) and once answered from the cache. */
async function hitsAgainstRuns(
  url: string,
  body: string,
  clients: number,
): Promise<{ runs: RunStats; hits: RunStats }> {
  const runs = await closedLoop(() => post(url, body, 'BYPASS', { 'cache-control': 'no-cache' }), clients, SECONDS);
  // The no-cache runs stored the answer: from here on every request is a hit.
  const hits = await closedLoop(() => post(url, body, 'HIT'), clients, SECONDS);
  return { runs, hits };
}

async function predictionCache(notes: string[]): Promise<ResultTable> {
  const server = await startServerProcess(SETTINGS);
  const rows: ResultRow[] = [];
  try {
    const cases = [
      {
        label: 'mlp-classifier, KServe v2 JSON',
        url: `${server.url}/v2/models/mlp-classifier/infer`,
        body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] },
        clients: 16,
      },
      {
        label: 'resnet-tiny, KServe v2 JSON (2.9 MB body)',
        url: `${server.url}/v2/models/resnet-tiny/infer`,
        body: {
          inputs: [
            {
              name: 'input',
              shape: [1, 3, 224, 224],
              datatype: 'FP32',
              data: Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i * 12.9898) * 0.5),
            },
          ],
        },
        clients: 4,
      },
      {
        label: 'stories260K, /v1/chat/completions, temperature 0, 32 tokens',
        url: `${server.url}/v1/chat/completions`,
        body: {
          model: 'stories260K',
          messages: [{ role: 'user', content: 'Once upon a time' }],
          max_tokens: 32,
          temperature: 0,
        },
        clients: 4,
      },
    ];
    for (const c of cases) {
      const { runs, hits } = await hitsAgainstRuns(c.url, JSON.stringify(c.body), c.clients);
      rows.push({
        label: `${c.label}, ${c.clients} clients, Cache-Control: no-cache (model runs)`,
        stats: runs,
        ratio: 1,
      });
      rows.push({
        label: `${c.label}, ${c.clients} clients, answered from the prediction cache`,
        stats: hits,
        ratio: hits.throughput / runs.throughput,
        note: 'ratio = requests/s with hits / without',
      });
    }
  } finally {
    await server.stop();
  }
  notes.push(
    'Prediction cache: one server, the same request body throughout; the no-cache rows run the model every time (and store its answer), the hit rows are answered by the cache. Errors count answers whose x-prediction-cache header was not the expected one.',
  );
  return {
    title: 'Prediction cache: throughput with hits against the model run every time (same run)',
    unit: 'requests',
    rows,
  };
}

/** Deterministic token ids in `[3, 512)` (stories260K's vocabulary), different for every `seed`. */
function tokenIds(seed: number, n: number): number[] {
  let x = (seed * 2654435761 + 12345) >>> 0;
  return Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return 3 + (x % 509);
  });
}

/** TTFT of each request, one after another; throughput is prompt tokens per second of TTFT p50. */
async function ttfts(base: string, bodies: Record<string, unknown>[], promptTokens: number) {
  const times: number[] = [];
  let cached = 0;
  const start = performance.now();
  for (const body of bodies) {
    const r = await streamGenerate(base, body);
    if (!Number.isFinite(r.ttftMs)) throw new Error('a request produced no token');
    times.push(r.ttftMs);
    cached += r.cachedTokens;
  }
  const p50 = quantile(times, 0.5);
  const stats: RunStats = {
    throughput: (promptTokens * 1000) / p50,
    p50Ms: p50,
    p99Ms: quantile(times, 0.99),
    count: times.length,
    errors: 0,
    seconds: (performance.now() - start) / 1000,
  };
  return { stats, meanCached: cached / times.length };
}

async function prefixPersistence(notes: string[]): Promise<ResultTable> {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-bench-prefix-'));
  const PREFIXES = 24;
  const PREFIX = 360;
  const args = [
    ...SETTINGS,
    '--model',
    `story=${STORIES}`,
    '--set',
    `cache.dir=${dir}`,
    '--set',
    'cache.prefix.persist=true',
  ];
  const prefixes = Array.from({ length: PREFIXES }, (_, i) => tokenIds(100 + i, PREFIX));
  // Each request: one of the long prefixes, then 8 tokens it has not been sent with before; one token out.
  const bodies = (round: number) =>
    prefixes.map((p, i) => ({
      model: 'story',
      prompt: [...p, ...tokenIds(10_000 * round + i, 8)],
      max_tokens: 1,
      temperature: 0,
      ignore_eos: true,
    }));
  const rows: ResultRow[] = [];
  let server: ServerProcess | undefined = await startServerProcess(args);
  try {
    const cold = await ttfts(server.url, bodies(1), PREFIX + 8);
    const warm = await ttfts(server.url, bodies(2), PREFIX + 8);
    // SIGTERM: a graceful stop writes the prefix cache; the new process restores it at load.
    await server.stop();
    server = await startServerProcess(args);
    const restarted = await ttfts(server.url, bodies(3), PREFIX + 8);
    const label = `${PREFIX}-token shared prefix + 8 new tokens, stories260K, one request at a time (TTFT)`;
    rows.push({ label: `${label}: cold (prefix never seen)`, stats: cold.stats, ratio: 1 });
    rows.push({
      label: `${label}: warm (prefix cached in this process)`,
      stats: warm.stats,
      ratio: cold.stats.p50Ms / warm.stats.p50Ms,
      note: `${warm.meanCached.toFixed(0)} prompt tokens from the cache on average`,
    });
    rows.push({
      label: `${label}: first use after a restart (cache restored from disk)`,
      stats: restarted.stats,
      ratio: cold.stats.p50Ms / restarted.stats.p50Ms,
      note: `${restarted.meanCached.toFixed(0)} prompt tokens from the cache on average`,
    });
  } finally {
    await server?.stop().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
  notes.push(
    `Prefix-cache persistence: ${PREFIXES} different ${PREFIX}-token prefixes, each sent once per row with 8 new tokens (so every after-restart request is the first use of its prefix in the new process); ratio = cold TTFT p50 / the row's; throughput = prompt tokens per second of TTFT p50. Native /generate with SSE, cache.prefix.persist on.`,
  );
  return {
    title: 'Prefix cache across a restart: TTFT cold, warm, and after a restart (same run)',
    unit: 'prompt tokens',
    rows,
  };
}

/** The caches suite: prediction-cache hits against runs, and prefix-cache TTFT across a restart. */
export async function cacheSuite(): Promise<string> {
  const notes: string[] = [];
  // Rows of one table are compared with each other; a host shared with other work moves them all, not their ratio.
  notes.push(
    `Load average when the suite started: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(', ')} (1, 5, 15 min).`,
  );
  const tables = [await predictionCache(notes), await prefixPersistence(notes)];
  return record('cache', machineInfo(), tables, notes);
}
