// The tuner suite: a step load on a tensor model, served with the default batching and with the tuner on, measuring
// p99 and throughput before and after the step (the tuned server gets the same settling time under the new load).
import { loadavg } from 'node:os';
import { machineInfo } from './machine.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { startServerProcess } from './server-process.js';
import { closedLoop, type RunStats } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const TARGET_P99_MS = Number(process.env.BENCH_TUNER_TARGET_MS ?? 25);
const LOW = 2;
const HIGH = 24;
// The prediction cache would answer the repeated body without running the model.
const BASE = ['--set', 'plugins.disabled=tracing,alerts,prediction-cache'];
const TUNED = [
  ...BASE,
  '--set',
  'tuning.enabled=true',
  '--set',
  `tuning.targetP99Ms=${TARGET_P99_MS}`,
  '--set',
  `tuning.intervalMs=${Math.max(250, Math.round((SECONDS * 1000) / 5))}`,
  '--set',
  'tuning.minSamples=20',
];

const BODY = JSON.stringify({
  inputs: [{ name: 'input', shape: [1, 3, 224, 224], datatype: 'FP32', data: new Array(3 * 224 * 224).fill(0.25) }],
});

async function post(url: string): Promise<boolean> {
  const res = await fetch(url, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json' } });
  await res.arrayBuffer();
  return res.ok;
}

/** Low load, then the step up: a settling period (unmeasured), then the measured high load. */
async function stepLoad(args: string[]): Promise<{ low: RunStats; high: RunStats; knobs: string }> {
  const server = await startServerProcess(args);
  try {
    const url = `${server.url}/v2/models/resnet-tiny/infer`;
    await post(url);
    const low = await closedLoop(() => post(url), LOW, SECONDS);
    await closedLoop(() => post(url), HIGH, SECONDS);
    const high = await closedLoop(() => post(url), HIGH, SECONDS);
    const status = (await (await fetch(`${server.url}/status`)).json()) as {
      models: Array<{
        name: string;
        versions: Array<{ batching?: { maxBatchSize: number; maxQueueDelayMs: number } }>;
      }>;
    };
    const b = status.models.find((m) => m.name === 'resnet-tiny')?.versions[0]?.batching;
    return { low, high, knobs: b ? `maxBatchSize ${b.maxBatchSize}, maxQueueDelayMs ${b.maxQueueDelayMs}` : '?' };
  } finally {
    await server.stop();
  }
}

/** The tuner suite: default batching against the tuner, under the same step load. */
export async function tunerSuite(): Promise<string> {
  const notes = [
    `Load average when the suite started: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(', ')} (1, 5, 15 min).`,
    `resnet-tiny, KServe v2 JSON, closed loop: ${LOW} clients for ${SECONDS} s, then ${HIGH} clients for ${SECONDS} s unmeasured (settling) and ${SECONDS} s measured. Tuner target p99 ${TARGET_P99_MS} ms (BENCH_TUNER_TARGET_MS); BENCH_SECONDS sets the phase length.`,
  ];
  const base = await stepLoad(BASE);
  const tuned = await stepLoad(TUNED);
  const rows: ResultRow[] = [
    { label: `default batching, ${LOW} clients`, stats: base.low, ratio: 1 },
    { label: `default batching, ${HIGH} clients (after the step)`, stats: base.high, ratio: 1, note: base.knobs },
    { label: `tuner on, ${LOW} clients`, stats: tuned.low, ratio: tuned.low.throughput / base.low.throughput },
    {
      label: `tuner on, ${HIGH} clients (after the step)`,
      stats: tuned.high,
      ratio: tuned.high.throughput / base.high.throughput,
      note: `tuned to ${tuned.knobs}`,
    },
  ];
  const table: ResultTable = { title: 'Step load: default batching against the tuner', unit: 'requests', rows };
  return record('tuner', machineInfo(), [table], notes);
}
