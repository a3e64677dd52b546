import { spawn } from 'node:child_process';
import { dirname } from 'node:path';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { MODEL_CACHE } from './llm-models.js';
import { machineInfo } from './machine.js';
import { ensureResnet18 } from './resnet18.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { closedLoop, type RunStats } from './stats.js';
import { binaryRequest, p99, post, randomData, rawOrt, type Case, type Encoded } from './tensor.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** A base checkout's `core/dist/cli/main.js`: its rows are recorded as "before". */
const BASE = process.env.BENCH_TENSOR_BASE;
const CLIENTS = [16, 32, 64];

const RESNET18: Case = { model: 'resnet18', input: 'input', item: [3, 224, 224] };
const RESNET_TINY: Case = { model: 'resnet-tiny', input: 'input', item: [3, 224, 224] };

// /health is polled from a process of its own: neither the load generator's event loop nor its CPU share skews it.
const POLLER = `
const latencies = [];
let stop = false;
process.once('message', () => (stop = true));
(async () => {
  while (!stop) {
    const t = performance.now();
    try { await (await fetch(process.argv[1] + '/health')).arrayBuffer(); } catch { }
    latencies.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 20));
  }
  process.send(latencies, () => process.exit(0));
})();
`;

/** Runs `load` while another process polls `/health` every 20 ms; returns the load's result and the poll latencies. */
async function withHealthProbe<T>(base: string, load: () => Promise<T>): Promise<{ result: T; healthMs: number[] }> {
  const poller = spawn(process.execPath, ['-e', POLLER, base], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const latencies = new Promise<number[]>((resolve, reject) => {
    poller.once('message', (m) => resolve(m as number[]));
    poller.once('error', reject);
    poller.once('exit', () => resolve([]));
  });
  const result = await load();
  poller.send('stop');
  return { result, healthMs: await latencies };
}

/**
 * Bodies of one request that all differ in their first tensor element, so the prediction cache never answers and
 * every image runs the model. Each request takes a buffer from a pool (one per client in flight) and stamps a counter.
 */
export class UniqueBodies {
  private readonly free: Buffer[] = [];
  private counter = 0;
  readonly bytes: number;

  constructor(
    readonly template: Encoded,
    private readonly stamp: (body: Buffer, n: number) => void,
  ) {
    this.bytes = template.body.byteLength;
  }

  async post(url: string): Promise<boolean> {
    const body = this.free.pop() ?? Buffer.from(this.template.body);
    this.stamp(body, ++this.counter);
    try {
      return await post(url, { body, headers: this.template.headers });
    } finally {
      this.free.push(body);
    }
  }
}

export function binaryBodies(c: Case): UniqueBodies {
  const template = binaryRequest(c);
  const offset = Number(template.headers['inference-header-content-length']);
  return new UniqueBodies(template, (body, n) => body.writeFloatLE(n, offset));
}

// The first element is a 10-digit integer the stamp overwrites in place; the rest is the same image as binary's.
export function jsonBodies(c: Case): UniqueBodies {
  const size = c.item.reduce((a, b) => a * b, 1);
  const data = Array.from(randomData(size));
  const head = `{"inputs":[{"name":"${c.input}","shape":${JSON.stringify([1, ...c.item])},"datatype":"FP32","data":[`;
  const body = Buffer.from(`${head}1000000000,${JSON.stringify(data.slice(1)).slice(1)}}]}`);
  return new UniqueBodies({ body, headers: { 'content-type': 'application/json' } }, (b, n) =>
    b.write(String(1_000_000_000 + (n % 1_000_000_000)), head.length, 'latin1'),
  );
}

interface Measured {
  stats: RunStats;
  healthP99: number;
}

async function measure(server: ServerProcess, c: Case, bodies: UniqueBodies, clients: number): Promise<Measured> {
  const url = `${server.url}/v2/models/${c.model}/infer`;
  // Unmeasured warm-up: JIT, the first batches at this concurrency, socket pools.
  await closedLoop(() => bodies.post(url), clients, 1);
  const { result, healthMs } = await withHealthProbe(server.url, () =>
    closedLoop(() => bodies.post(url), clients, SECONDS),
  );
  return { stats: result, healthP99: p99(healthMs) };
}

async function serverRows(
  label: string,
  cli: string | undefined,
  models: string[],
  raw: Map<string, number>,
): Promise<Map<string, ResultRow[]>> {
  const args = models.flatMap((m) => ['--model', m]);
  const server = await startServerProcess(args, {}, cli ? { cli } : {});
  const byModel = new Map<string, ResultRow[]>();
  try {
    for (const [c, kinds] of [
      [RESNET18, ['binary', 'JSON']],
      [RESNET_TINY, ['binary']],
    ] as const) {
      const rows: ResultRow[] = [];
      for (const kind of kinds) {
        const bodies = kind === 'binary' ? binaryBodies(c) : jsonBodies(c);
        const kib = (bodies.bytes / 1024).toFixed(0);
        for (const clients of CLIENTS) {
          const { stats, healthP99 } = await measure(server, c, bodies, clients);
          process.stdout.write(`${c.model} ${label} ${kind} ${clients}: ${stats.throughput.toFixed(1)} items/s\n`);
          rows.push({
            label: `${label}, ${kind} body (${kib} KiB), ${clients} clients`,
            stats,
            ratio: stats.throughput / raw.get(c.model)!,
            note: `/health p99 ${healthP99.toFixed(1)} ms`,
          });
        }
      }
      byModel.set(c.model, rows);
    }
  } finally {
    await server.stop();
  }
  return byModel;
}

/**
 * ResNet-sized KServe v2 bodies (1×3×224×224 FP32) over HTTP against raw onnxruntime-node at batch 1 in the same
 * run: the binary tensor data extension and JSON at 16, 32 and 64 clients, with /health's p99 from another process.
 */
export async function tensorBodiesSuite(): Promise<string> {
  const resnet18 = await ensureResnet18(MODEL_CACHE);
  const tiny = (await ensureBuiltinModels(MODEL_CACHE)).find((m) => m.name === 'resnet-tiny')!;
  const rawStats = new Map<string, RunStats>([
    ['resnet18', await rawOrt(resnet18.modelPath, RESNET18, 1)],
    ['resnet-tiny', await rawOrt(tiny.modelPath, RESNET_TINY, 1)],
  ]);
  const raw = new Map([...rawStats].map(([k, v]) => [k, v.throughput]));
  // A --model flag replaces the built-in models, so resnet-tiny is named too (its version folder's parent).
  const models = [`resnet18=${resnet18.dir}`, `resnet-tiny=${dirname(tiny.dir)}`];
  const runs: Map<string, ResultRow[]>[] = [];
  if (BASE) runs.push(await serverRows('before (base commit)', BASE, models, raw));
  runs.push(await serverRows(BASE ? 'after' : 'server', undefined, models, raw));
  const tables: ResultTable[] = [RESNET18, RESNET_TINY].map((c) => ({
    title: `${c.model} (${c.item.join('×')} per image)`,
    unit: 'images',
    rows: [
      { label: 'raw onnxruntime-node, batch 1, in a loop', stats: rawStats.get(c.model)!, ratio: 1 },
      ...runs.flatMap((r) => r.get(c.model) ?? []),
    ],
  }));
  const notes = [
    'resnet18 is ResNet-18 as torchvision lays it out (batch norm folded into the convolutions, ≈1.8 G multiply-adds per image) with random weights, built by bench/src/resnet18.ts; resnet-tiny is the built-in fixture (≈9 M multiply-adds), where the HTTP path and not the model sets the pace.',
    `Each row runs ${SECONDS} s after 1 s of unmeasured warm-up; the ratio compares with raw onnxruntime-node at batch 1 in the same run. The server is \`nucleus serve\` in its own process with its default config; client, server and raw runs share the same cores.`,
    '/health is polled every 20 ms by a separate Node process while the load runs.',
    'Every request carries a different image (its first element is a counter), so the prediction cache never answers and each image runs the model.',
  ];
  return record('tensor-bodies', machineInfo(), tables, notes);
}
