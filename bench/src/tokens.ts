// The per-token loop on stories260K, layer by layer: the runner's decode step alone, the generation loop around it
// (sampling, detokenizing, stop checks), the engine in process (worker thread, token groups, event channel), then
// `nucleus serve` over HTTP with SSE — against node-llama-cpp on the same GGUF in process, at the same thread count.
// What a layer adds per token is the difference between its row and the row under it: the per-step breakdown.
import { request } from 'node:http';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { NucleusServer } from '@nucleus/core';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { GenerationLoop, type LoopSink } from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { GenerationScheduler } from '@nucleus/core/internal/engine/llm/generation/scheduler';
import { createTokenizer, type LoadedLlm } from '@nucleus/sdk/llm';
import { runProbe } from './gguf-probe.js';
import { loadLlm } from './llm-models.js';
import { machineInfo } from './machine.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { startServerProcess } from './server-process.js';
import { quantile, type RunStats } from './stats.js';
import { concurrentStreams, engineGenerate, type Streamed } from './streams.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const THREADS = Number(process.env.BENCH_THREADS ?? 1);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const STORIES = join(REPO, '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');
/** Prompt tokens of every request (BOS, then ids that differ from request to request). */
const PROMPT_TOKENS = 8;
const LENGTHS = (process.env.BENCH_TOKENS_LENGTHS ?? '96,256').split(',').map(Number);
const STREAMS = (process.env.BENCH_TOKENS_STREAMS ?? '1,32').split(',').map(Number);

/** Deterministic prompt ids in `[3, 500)` (valid in the 512-token vocabulary), BOS first, different for every `i`. */
function promptOf(i: number): number[] {
  let x = ((i + 1) * 2654435761) >>> 0;
  return [
    1,
    ...Array.from({ length: PROMPT_TOKENS - 1 }, () => {
      x = (x * 1664525 + 1013904223) >>> 0;
      return 3 + (x % 497);
    }),
  ];
}

/** Wraps `session.run` to add up the time spent inside it (ORT's share of a step). */
function timeRuns(session: ort.InferenceSession): { ms: () => number; reset: () => void } {
  const run = session.run.bind(session) as (...a: unknown[]) => Promise<unknown>;
  let total = 0;
  (session as { run: unknown }).run = async (...args: unknown[]) => {
    const t = performance.now();
    try {
      return await run(...args);
    } finally {
      total += performance.now() - t;
    }
  };
  return { ms: () => total, reset: () => (total = 0) };
}

function sessionOptions(): ort.InferenceSession.SessionOptions {
  return { intraOpNumThreads: THREADS, extra: { session: { intra_op: { allow_spinning: '0' } } } };
}

/** Tokens per second with p50/p99 of the ms per token of each step (a step makes `rows` tokens). */
function perToken(stepMs: readonly number[], rows: number): RunStats {
  const total = stepMs.reduce((a, b) => a + b, 0);
  const perTok = stepMs.map((m) => m / rows);
  return {
    throughput: (stepMs.length * rows * 1000) / total,
    p50Ms: quantile(perTok, 0.5),
    p99Ms: quantile(perTok, 0.99),
    count: stepMs.length * rows,
    errors: 0,
    seconds: total / 1000,
  };
}

/** The runner's decode steps alone, in this thread: `rows` rows, `steps` steps of each `tokens`-token generation. */
async function runnerRow(llm: LoadedLlm, rows: number, tokens: number): Promise<{ row: ResultRow; ortShare: number }> {
  const session = await ort.InferenceSession.create(llm.onnxPath, sessionOptions());
  const timer = timeRuns(session);
  const stepMs: number[] = [];
  const end = performance.now() + SECONDS * 1000;
  try {
    for (let g = 0; performance.now() < end; g++) {
      const runner = new ContribDecoderSession(session, llm.config, { initialRows: rows });
      await runner.admit(Array.from({ length: rows }, (_, r) => promptOf(g * rows + r)));
      if (g === 0) timer.reset();
      const ids = new Array<number>(rows).fill(5);
      for (let i = 0; i < tokens - 1; i++) {
        const t = performance.now();
        await runner.decode(ids);
        if (g > 0 || i >= 8) stepMs.push(performance.now() - t);
      }
      if (g === 0) timer.reset();
    }
  } finally {
    await session.release();
  }
  const stats = perToken(stepMs, rows);
  const ortMs = timer.ms() / (stepMs.length * rows);
  return {
    row: {
      label: `runner decode step alone (contrib graph), ${rows} row${rows > 1 ? 's' : ''} × ${tokens} tokens`,
      stats,
      note: `ORT session.run ${ortMs.toFixed(3)} ms/token of ${((stats.seconds * 1000) / stats.count).toFixed(3)}`,
    },
    ortShare: ortMs,
  };
}

/**
 * The generation loop in this thread, over the same runner: scheduling, sampling (greedy over the vocabulary),
 * detokenizing, stop checks, and a sink that keeps nothing. No thread hop, no messages.
 */
async function loopRow(llm: LoadedLlm, streams: number, tokens: number): Promise<ResultRow> {
  const session = await ort.InferenceSession.create(llm.onnxPath, sessionOptions());
  const timer = timeRuns(session);
  const tokenizer = createTokenizer(llm.tokenizer);
  let produced = 0;
  let finished = 0;
  const sink: LoopSink = {
    token: () => void produced++,
    finish: () => void finished++,
    fail: (_ids, err) => {
      throw err;
    },
  };
  const scheduler = new GenerationScheduler({
    maxRunning: streams,
    maxBatchSize: streams,
    batchWindowMs: 0,
    strategy: 'fifo',
  });
  const runner = new ContribDecoderSession(session, llm.config, { initialRows: streams });
  const loop = new GenerationLoop({ runner, scheduler, sink, maxContext: llm.config.maxContext });
  let next = 0;
  const add = () => {
    const id = next++;
    loop.add({
      id,
      promptIds: promptOf(id),
      params: { temperature: 0, topP: 1, topK: 0, repetitionPenalty: 1, frequencyPenalty: 0, presencePenalty: 0 },
      seed: id,
      maxTokens: tokens,
      stop: [],
      eosTokenIds: [2],
      ignoreEos: true,
      priority: 'normal',
      decoder: tokenizer.createStreamDecoder({ prefix: promptOf(id) }),
    });
  };
  const decodeMs: number[] = [];
  let decodeTokens = 0;
  try {
    for (let s = 0; s < streams; s++) add();
    const end = performance.now() + SECONDS * 1000;
    let ortBefore = 0;
    let started = false;
    while (performance.now() < end) {
      const r = await loop.iterate();
      for (const step of r.steps) {
        if (step.phase !== 'decode') continue;
        // The first generation of each stream warms up.
        if (!started && finished >= streams) {
          started = true;
          ortBefore = timer.ms();
        }
        if (started) {
          decodeMs.push(step.durationMs);
          decodeTokens += step.tokens;
        }
      }
      while (loop.running + loop.waiting < streams) add();
    }
    const total = decodeMs.reduce((a, b) => a + b, 0);
    const ortMs = (timer.ms() - ortBefore) / decodeTokens;
    return {
      label: `generation loop in this thread (sampling, detokenizing, stop checks), ${streams} stream${streams > 1 ? 's' : ''} × ${tokens} tokens`,
      stats: {
        throughput: (decodeTokens * 1000) / total,
        p50Ms: quantile(
          decodeMs.map((m) => m / Math.max(1, streams)),
          0.5,
        ),
        p99Ms: quantile(
          decodeMs.map((m) => m / Math.max(1, streams)),
          0.99,
        ),
        count: decodeTokens,
        errors: 0,
        seconds: total / 1000,
      },
      note: `decode steps only; ORT session.run ${ortMs.toFixed(3)} ms/token of ${(total / decodeTokens).toFixed(3)}; ${produced} tokens in all`,
    };
  } finally {
    await session.release();
  }
}

/** The engine API of a server in this process: the worker thread, its token groups and the event channel. */
async function engineRows(): Promise<ResultRow[]> {
  const server = await NucleusServer.start({
    env: {},
    builtinModels: false,
    cli: {
      'server.port': 0,
      'plugins.watch': false,
      'logging.level': 'warn',
      'plugins.disabled': ['tracing', 'alerts'],
      'scheduler.batchWindowMs': 2,
      'plugin.backend-cpu.intraOpNumThreads': THREADS,
      models: [{ name: 'stories260K', path: STORIES }],
    },
  });
  const rows: ResultRow[] = [];
  try {
    const generation = server.kernel.generation;
    for (const tokens of LENGTHS)
      for (const streams of STREAMS) {
        const run = (i: number) =>
          engineGenerate(generation, { model: 'stories260K', prompt: promptOf(i), max_tokens: tokens });
        await concurrentStreams(streams, 1, run);
        const r = await concurrentStreams(streams, SECONDS, run);
        rows.push(streamRow(`Nucleus engine API in process (worker thread, no HTTP)`, streams, tokens, r));
      }
  } finally {
    await server.stop();
  }
  return rows;
}

/**
 * One `/generate` SSE stream read with node:http, counting token events by their text: a load generator that spends
 * as little CPU as it can, since it shares the machine with the server.
 */
function httpGenerate(base: URL, body: string): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let ttftMs = NaN;
    let tokens = 0;
    let tail = '';
    const req = request(
      base,
      { method: 'POST', path: '/generate', headers: { 'content-type': 'application/json', connection: 'keep-alive' } },
      (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`HTTP ${res.statusCode}`));
          return;
        }
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          // A token event carries `"token":{"id"`; the finish event carries `"token":null`.
          const text = tail + chunk;
          let at = text.indexOf('"token":{');
          while (at >= 0) {
            if (tokens++ === 0) ttftMs = performance.now() - started;
            at = text.indexOf('"token":{', at + 9);
          }
          tail = text.slice(-8);
        });
        res.on('end', () => resolve({ ttftMs, totalMs: performance.now() - started, tokens, cachedTokens: 0 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function streamRow(what: string, streams: number, tokens: number, r: Awaited<ReturnType<typeof concurrentStreams>>) {
  return {
    label: `${what}, ${streams} stream${streams > 1 ? 's' : ''} × ${tokens} tokens`,
    stats: r.stats,
    note: `${(1000 / r.stats.throughput).toFixed(3)} ms/token over all streams; ${r.stats.count} requests; ${r.perStreamDecode.toFixed(0)} tok/s per stream after its first token; p50/p99 = TTFT`,
  } satisfies ResultRow;
}

async function httpRows(): Promise<ResultRow[]> {
  // BENCH_TOKENS_URL: a server started by hand (under --cpu-prof, say) with the same settings.
  const external = process.env.BENCH_TOKENS_URL;
  const server = external
    ? { url: external, stop: async () => undefined }
    : await startServerProcess([
        '--model',
        `stories260K=${STORIES}`,
        '--set',
        'plugins.disabled=tracing,alerts',
        '--set',
        'scheduler.batchWindowMs=2',
        '--set',
        `plugin.backend-cpu.intraOpNumThreads=${THREADS}`,
      ]);
  const rows: ResultRow[] = [];
  try {
    const base = new URL(server.url);
    for (const tokens of LENGTHS)
      for (const streams of STREAMS) {
        const run = (i: number) =>
          httpGenerate(
            base,
            JSON.stringify({
              model: 'stories260K',
              prompt: promptOf(i),
              max_tokens: tokens,
              temperature: 0,
              ignore_eos: true,
              stream: true,
            }),
          );
        await concurrentStreams(streams, 1, run);
        const r = await concurrentStreams(streams, SECONDS, run);
        if (r.stats.errors > 0) throw new Error(`${r.stats.errors} HTTP streams failed`);
        rows.push(streamRow('Nucleus over HTTP (`nucleus serve`, native /generate, SSE)', streams, tokens, r));
      }
  } finally {
    await server.stop();
  }
  return rows;
}

async function llamaRows(): Promise<ResultRow[]> {
  const rows: ResultRow[] = [];
  for (const tokens of LENGTHS) {
    const r = await runProbe({
      runtime: 'node-llama-cpp',
      path: STORIES,
      promptIds: promptOf(0),
      newTokens: tokens,
      streams: STREAMS,
      seconds: SECONDS,
      threads: THREADS,
    });
    if (r.refused) throw new Error(`node-llama-cpp refused stories260K: ${r.refused}`);
    for (const streams of STREAMS) {
      const tps = r.tokensPerSecond[streams]!;
      rows.push({
        label: `node-llama-cpp in process (llama.cpp), ${streams} stream${streams > 1 ? 's' : ''} × ${tokens} tokens`,
        stats: { throughput: tps, p50Ms: NaN, p99Ms: NaN, count: 0, errors: 0, seconds: SECONDS },
        note: `${(1000 / tps).toFixed(3)} ms/token over all streams; a process of its own; its sequences batched in one context`,
      });
    }
  }
  return rows;
}

/** The tokens suite: the per-token loop of stories260K, layer by layer, against node-llama-cpp. */
export async function tokensSuite(): Promise<string> {
  if (!existsSync(STORIES)) return `tokens: skipped, ${STORIES} is absent`;
  const llm = await loadLlm(STORIES, { name: 'stories260K', graphStyle: 'contrib' });
  const only = (process.env.BENCH_TOKENS_LAYERS ?? 'runner,loop,engine,http,llama').split(',');
  const rows: ResultRow[] = [];
  if (only.includes('runner'))
    for (const streams of STREAMS) rows.push((await runnerRow(llm, streams, LENGTHS.at(-1)!)).row);
  if (only.includes('loop')) for (const streams of STREAMS) rows.push(await loopRow(llm, streams, LENGTHS.at(-1)!));
  if (only.includes('engine')) rows.push(...(await engineRows()));
  if (only.includes('http')) rows.push(...(await httpRows()));
  if (only.includes('llama')) rows.push(...(await llamaRows()));
  // Each HTTP row against node-llama-cpp's row of the same streams and length.
  for (const row of rows) {
    const m = /, (\d+) streams? × (\d+) tokens$/.exec(row.label);
    if (!m || !row.label.startsWith('Nucleus')) continue;
    const peer = rows.find((r) => r.label.startsWith('node-llama-cpp') && r.label.endsWith(m[0]));
    if (peer) row.ratio = row.stats.throughput / peer.stats.throughput;
  }
  const table: ResultTable = { title: `stories260K, ${THREADS} ORT/llama.cpp thread(s)`, unit: 'tokens', rows };
  return record(
    'tokens',
    machineInfo(),
    [table],
    [
      `Each run lasts ${SECONDS} s after a 1 s warm-up; prompts of ${PROMPT_TOKENS} tokens, greedy, ignore_eos. Ratio: against node-llama-cpp at the same streams and length.`,
    ],
  );
}
