import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { MODEL_CACHE } from './llm-models.js';
import { machineInfo } from './machine.js';
import { startServerProcess } from './server-process.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { closedLoop, timeLoop, type RunStats } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);

/** A tensor model the suite measures and the shape of one item. */
export interface Case {
  model: string;
  input: string;
  /** Shape of one item, without the batch dimension. */
  item: number[];
}

const CASES: Case[] = [
  { model: 'mlp-classifier', input: 'input', item: [4] },
  { model: 'resnet-tiny', input: 'input', item: [3, 224, 224] },
];

export function randomData(n: number): Float32Array {
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i * 12.9898) * 0.5;
  return data;
}

export async function rawOrt(modelPath: string, c: Case, batch: number): Promise<RunStats> {
  const session = await ort.InferenceSession.create(modelPath, {
    graphOptimizationLevel: 'all',
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
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
  return JSON.stringify({
    inputs: [{ name: c.input, shape: [1, ...c.item], datatype: 'FP32', data: Array.from(randomData(size)) }],
  });
}

/** A request body and its headers, encoded once and sent as they are by every client. */
export interface Encoded {
  body: Buffer;
  headers: Record<string, string>;
}

export function jsonRequest(c: Case): Encoded {
  return { body: Buffer.from(inferBody(c)), headers: { 'content-type': 'application/json' } };
}

/** The same request in the binary tensor data extension: a JSON header, then the tensor's little-endian bytes. */
export function binaryRequest(c: Case): Encoded {
  const size = c.item.reduce((a, b) => a * b, 1);
  const data = randomData(size);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: c.input, shape: [1, ...c.item], datatype: 'FP32', parameters: { binary_data_size: data.byteLength } },
      ],
    }),
  );
  return {
    body: Buffer.concat([header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]),
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.byteLength),
    },
  };
}

export async function post(url: string, request: Encoded | string): Promise<boolean> {
  const { body, headers } =
    typeof request === 'string' ? { body: request, headers: { 'content-type': 'application/json' } } : request;
  const res = await fetch(url, { method: 'POST', body, headers });
  await res.arrayBuffer();
  return res.ok;
}

// The /health poller runs on a thread of its own, so its timings are the server's and not the load generator's
// event loop (64 clients sending multi-MB bodies keep that busy too).
const POLLER = `
const { parentPort, workerData } = require('node:worker_threads');
const latencies = [];
let stop = false;
parentPort.once('message', () => (stop = true));
(async () => {
  while (!stop) {
    const t = performance.now();
    await (await fetch(workerData + '/health')).arrayBuffer();
    latencies.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  parentPort.postMessage(latencies);
})();
`;

/** While `load` runs, polls /health every 20 ms from another thread and returns its latencies. */
async function healthDuring<T>(base: string, load: Promise<T>): Promise<{ result: T; healthMs: number[] }> {
  const poller = new Worker(POLLER, { eval: true, workerData: base });
  try {
    const result = await load;
    const healthMs = await new Promise<number[]>((resolve, reject) => {
      poller.once('message', resolve);
      poller.once('error', reject);
      poller.postMessage('stop');
    });
    return { result, healthMs };
  } finally {
    await poller.terminate();
  }
}

export function p99(values: readonly number[]): number {
  return [...values].sort((a, b) => a - b)[Math.max(0, Math.ceil(values.length * 0.99) - 1)] ?? NaN;
}

/** The tensor-model suite: raw ORT batch 1 and 32 against the server under 1, 16 and 64 clients. */
export async function tensorSuite(): Promise<string> {
  const models = await ensureBuiltinModels(MODEL_CACHE);
  const pathOf = (name: string) => models.find((m) => m.name === name)!.modelPath;
  const server = await startServerProcess();
  const tables: ResultTable[] = [];
  const notes: string[] = [];
  // resnet-tiny's /health p99 and throughput by body kind and clients, for the notes.
  const healthP99s = new Map<string, number>();
  const throughputs = new Map<string, number>();
  try {
    for (const c of CASES) {
      const raw1 = await rawOrt(pathOf(c.model), c, 1);
      const raw32 = await rawOrt(pathOf(c.model), c, 32);
      const rows: ResultRow[] = [
        { label: 'raw onnxruntime-node, batch 1, in a loop', stats: raw1, ratio: 1 },
        { label: 'raw onnxruntime-node, batch 32, in a loop', stats: raw32, ratio: raw32.throughput / raw1.throughput },
      ];
      const url = `${server.url}/v2/models/${c.model}/infer`;
      const bodies = { JSON: jsonRequest(c), binary: binaryRequest(c) };
      for (const clients of [1, 16, 64]) {
        for (const [kind, request] of Object.entries(bodies)) {
          const { result, healthMs } = await healthDuring(
            server.url,
            closedLoop(() => post(url, request), clients, SECONDS),
          );
          const healthP99 = p99(healthMs);
          if (c.model === 'resnet-tiny') healthP99s.set(`${kind} ${clients}`, healthP99);
          if (c.model === 'resnet-tiny') throughputs.set(`${kind} ${clients}`, result.throughput);
          rows.push({
            label: `server, KServe v2 over HTTP, ${kind} body (${(request.body.byteLength / 1024).toFixed(0)} KiB), ${clients} client${clients > 1 ? 's' : ''}`,
            stats: result,
            ratio: result.throughput / raw1.throughput,
            note: `/health p99 ${healthP99.toFixed(1)} ms`,
          });
        }
      }
      tables.push({ title: `${c.model} (${c.item.join('×')} per item)`, unit: 'items', rows });
    }
    // Seed 001 asks 10,000 predictions/s with p99 < 100 ms for small tabular models.
    const tab: Case = { model: 'tabular-classifier', input: 'features', item: [8] };
    const tabRaw = await rawOrt(pathOf(tab.model), tab, 1);
    const tabServer = await closedLoop(
      () => post(`${server.url}/v2/models/${tab.model}/infer`, inferBody(tab)),
      64,
      SECONDS,
    );
    // What limits it: the same HTTP stack answering /health only (no body, no engine), and rows sent 64 to a request.
    const health = await closedLoop(
      async () => {
        const res = await fetch(`${server.url}/health`);
        await res.arrayBuffer();
        return res.ok;
      },
      64,
      SECONDS,
    );
    const rows64 = JSON.stringify({
      inputs: [{ name: tab.input, shape: [64, 8], datatype: 'FP32', data: Array.from(randomData(64 * 8)) }],
    });
    const tabRows64 = await closedLoop(() => post(`${server.url}/v2/models/${tab.model}/infer`, rows64), 16, SECONDS);
    tabRows64.throughput *= 64;
    const record1 = Object.fromEntries(
      [
        'age',
        'annual_income',
        'debt_ratio',
        'open_credit_lines',
        'late_payments_12m',
        'years_employed',
        'loan_amount',
        'savings_balance',
      ].map((n, i) => [n, i + 1]),
    );
    const tabFeatures = await closedLoop(
      () => post(`${server.url}/infer`, JSON.stringify({ model: tab.model, features: record1 })),
      64,
      SECONDS,
    );
    tables.push({
      title: 'tabular-classifier (target: 10,000 predictions/s, p99 < 100 ms)',
      unit: 'predictions',
      rows: [
        { label: 'raw onnxruntime-node, batch 1, in a loop', stats: tabRaw, ratio: 1 },
        {
          label: 'server, KServe v2 over HTTP, 1 row per request, 64 clients',
          stats: tabServer,
          ratio: tabServer.throughput / tabRaw.throughput,
        },
        {
          label: 'server, native /infer with named features, 64 clients',
          stats: tabFeatures,
          ratio: tabFeatures.throughput / tabRaw.throughput,
        },
        {
          label: 'server, KServe v2 over HTTP, 64 rows per request, 16 clients',
          stats: tabRows64,
          ratio: tabRows64.throughput / tabRaw.throughput,
          note: 'p50/p99 per request of 64 rows',
        },
        {
          label: 'server, GET /health only (HTTP ceiling), 64 clients',
          stats: health,
          ratio: health.throughput / tabRaw.throughput,
          note: 'requests/s, no model',
        },
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
      `ResNet bodies: a 1×3×224×224 FP32 image is ~${(jsonRequest(CASES[1]!).body.byteLength / 2 ** 20).toFixed(1)} MiB as JSON and ${(binaryRequest(CASES[1]!).body.byteLength / 2 ** 20).toFixed(2)} MiB in the binary tensor data extension. ` +
        `At 64 clients the binary body serves ${(throughputs.get('binary 64') ?? NaN).toFixed(0)} images/s against ${(throughputs.get('JSON 64') ?? NaN).toFixed(0)} for JSON, ` +
        `with /health p99 ${(healthP99s.get('binary 64') ?? NaN).toFixed(0)} ms against ${(healthP99s.get('JSON 64') ?? NaN).toFixed(0)} ms (16 clients: ${(healthP99s.get('binary 16') ?? NaN).toFixed(0)} and ${(healthP99s.get('JSON 16') ?? NaN).toFixed(0)} ms). ` +
        'JSON bodies above server.offloadJsonBytes (256 KiB) are parsed on a worker thread; a binary body is read into one buffer with its tensor bytes 8-byte aligned and viewed in place, so the main thread only reads the socket, assembles batches and answers.',
      "/health is polled every 20 ms from a worker thread of the load generator, so its latency is the server's and not the event loop of the process sending the load.",
      'The server runs in its own process (`nucleus serve`); the load generator and raw ORT runs share the same 2 cores with it, so client and server compete for CPU but not for an event loop.',
    );
  } finally {
    await server.stop();
  }
  return record('tensor', machineInfo(), tables, notes);
}
