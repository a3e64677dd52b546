// One runtime on one GGUF file in a process of its own, for the gguf suite: it loads the file (or nothing, to tell what
// the runtime holds by itself), generates once, reports its resident memory, then decode tokens/s at each stream count.
// A process per file and runtime, so that one's memory never counts in another's and a crash costs one row.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { LlamaContext, LlamaContextSequence, LlamaModel } from 'node-llama-cpp';
import type { DecoderConfig } from '@nucleus/sdk/llm';
import type * as ort from 'onnxruntime-node';
import { concurrentStreams, engineGenerate, type Streamed } from './streams.js';

export type ProbeRuntime = 'nucleus' | 'node-llama-cpp';

/** Nucleus's runtimes, and ONNX Runtime alone on the graph Nucleus built (its share of Nucleus's memory). */
export type ProbeKind = ProbeRuntime | 'onnxruntime';

/** What one probe process does. */
export interface ProbeSpec {
  runtime: ProbeKind;
  /** The GGUF file (for onnxruntime: the ONNX graph built from it); absent: load nothing (the idle baseline). */
  path?: string;
  /** For onnxruntime: the decoder config of the graph. */
  config?: DecoderConfig;
  /** For nucleus: `models[].quantizedMatmul` (then the model is configured at start-up instead of loaded later). */
  quantizedMatmul?: 'float32' | 'int8';
  /** The greedy run's prompt; each timed request keeps its first token (BOS) and varies the rest. */
  promptIds: number[];
  newTokens: number;
  /** Concurrent streams of each timed run; empty: memory only. */
  streams: number[];
  seconds: number;
  threads: number;
}

/** What it measured. */
export interface ProbeResult {
  /** Resident set of the started runtime before it loads the file, in bytes. */
  rssBefore: number;
  /** Resident set after loading and one greedy generation, in bytes (`rssBefore` where nothing was loaded). */
  rss: number;
  /** The loader's message when the runtime refused the file. */
  refused?: string;
  /** The greedy ids of the first generation. */
  greedy?: number[];
  /** Tokens per second over all streams, by stream count. */
  tokensPerSecond: Record<number, number>;
}

const SELF = fileURLToPath(import.meta.url);

/**
 * Runs a probe in a child process, with `--expose-gc` so that RSS is read after a full collection; a memory-only probe
 * (no streams) with a 1 MB V8 young generation, whose resizing otherwise moves RSS by up to 10 MB between readings.
 */
export function runProbe(spec: ProbeSpec): Promise<ProbeResult> {
  const flags = ['--expose-gc', ...(spec.streams.length ? [] : ['--max-semi-space-size=1'])];
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [...flags, SELF, JSON.stringify(spec)],
      { maxBuffer: 16 * 2 ** 20, timeout: (spec.seconds * spec.streams.length + 300) * 1000 },
      (err, stdout, stderr) => {
        const last = stdout.trim().split('\n').pop() ?? '';
        if (last.startsWith('{')) resolve(JSON.parse(last) as ProbeResult);
        else {
          // Why, without the command line (it names where the bench was run from): a time-out, or the exit and stderr.
          const why = err?.killed
            ? `no answer within ${spec.seconds * spec.streams.length + 300} s`
            : `exit ${err?.code ?? '?'}${err?.signal ? ` (${err.signal})` : ''}`;
          reject(new Error(`${spec.runtime} probe of ${spec.path ?? '(idle)'} failed: ${why} ${stderr.slice(-2000)}`));
        }
      },
    );
  });
}

/** Timed requests vary every prompt token but the first, in [3, 500): valid ids of every vocabulary benchmarked. */
function variedPrompt(spec: ProbeSpec, i: number): number[] {
  let x = ((i + 1) * 2654435761) >>> 0;
  return [
    spec.promptIds[0]!,
    ...spec.promptIds.slice(1).map(() => {
      x = (x * 1664525 + 1013904223) >>> 0;
      return 3 + (x % 497);
    }),
  ];
}

function rssAfterGc(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().rss;
}

async function probeNucleus(spec: ProbeSpec): Promise<ProbeResult> {
  const { NucleusServer } = await import('@nucleus/core');
  const adminKey = randomUUID();
  // POST /admin/models takes no quantizedMatmul: such a model is configured at start-up.
  const atStart =
    spec.path && spec.quantizedMatmul ? [{ name: 'm', path: spec.path, quantizedMatmul: spec.quantizedMatmul }] : [];
  let server: Awaited<ReturnType<typeof NucleusServer.start>>;
  try {
    server = await NucleusServer.start({
      env: {},
      builtinModels: false,
      cli: {
        'server.port': 0,
        'plugins.watch': false,
        'logging.level': 'silent',
        'plugins.disabled': ['tracing', 'alerts'],
        'scheduler.batchWindowMs': 2,
        'plugin.backend-cpu.intraOpNumThreads': spec.threads,
        'auth.adminKey': adminKey,
        models: atStart,
      },
    });
  } catch (err) {
    return { rssBefore: NaN, rss: NaN, refused: err instanceof Error ? err.message : String(err), tokensPerSecond: {} };
  }
  try {
    const rssBefore = rssAfterGc();
    if (!spec.path) return { rssBefore, rss: rssBefore, tokensPerSecond: {} };
    // Loaded as a user loads one at run time, so that the baseline is the same process's.
    const res = atStart.length
      ? undefined
      : await fetch(`${server.url}/admin/models`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
          body: JSON.stringify({ name: 'm', source: spec.path }),
        });
    if (res && !res.ok) {
      const body = (await res.json().catch(() => ({}))) as { error?: { message?: string } };
      return {
        rssBefore,
        rss: rssAfterGc(),
        refused: body.error?.message ?? `HTTP ${res.status}`,
        tokensPerSecond: {},
      };
    }
    const generation = server.kernel.generation;
    const greedy: number[] = [];
    const stream = await generation.generate({
      model: 'm',
      prompt: spec.promptIds,
      maxTokens: spec.newTokens,
      temperature: 0,
      ignoreEos: true,
    });
    for await (const e of stream) if (e.type === 'token') greedy.push(e.tokenId);
    const rss = rssAfterGc();
    const tokensPerSecond: Record<number, number> = {};
    for (const clients of spec.streams) {
      const r = await concurrentStreams(clients, spec.seconds, (i) =>
        engineGenerate(generation, { model: 'm', prompt: variedPrompt(spec, i), max_tokens: spec.newTokens }),
      );
      tokensPerSecond[clients] = r.stats.throughput;
    }
    return { rssBefore, rss, greedy, tokensPerSecond };
  } finally {
    await server.stop();
  }
}

/** Greedy generation on one sequence of a node-llama-cpp context, from a clean history, timed as {@link engineGenerate}. */
async function llamaGenerate(
  sequence: LlamaContextSequence,
  prompt: number[],
  tokens: number,
  ids?: number[],
): Promise<Streamed> {
  await sequence.clearHistory();
  const started = performance.now();
  let ttftMs = NaN;
  let n = 0;
  for await (const id of sequence.evaluate(prompt as never, { temperature: 0 })) {
    if (n === 0) ttftMs = performance.now() - started;
    ids?.push(id);
    if (++n >= tokens) break;
  }
  return { ttftMs, totalMs: performance.now() - started, tokens: n, cachedTokens: 0 };
}

async function probeLlamaCpp(spec: ProbeSpec): Promise<ProbeResult> {
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  // The prebuilt CPU binary of @node-llama-cpp/linux-x64 only: never a download, a source build or a GPU probe.
  const llama = await getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: spec.threads,
  });
  const rssBefore = rssAfterGc();
  if (!spec.path) return { rssBefore, rss: rssBefore, tokensPerSecond: {} };
  let model: LlamaModel;
  try {
    model = await llama.loadModel({ modelPath: spec.path, gpuLayers: 0 });
  } catch (err) {
    return {
      rssBefore,
      rss: rssAfterGc(),
      refused: err instanceof Error ? err.message : String(err),
      tokensPerSecond: {},
    };
  }
  const contextSize = spec.promptIds.length + spec.newTokens + 16;
  const contextOf = (sequences: number): Promise<LlamaContext> =>
    model.createContext({ contextSize, sequences, threads: spec.threads });
  let context = await contextOf(1);
  const first = context.getSequence();
  const greedy: number[] = [];
  await llamaGenerate(first, spec.promptIds, spec.newTokens, greedy);
  const rss = rssAfterGc();
  const tokensPerSecond: Record<number, number> = {};
  for (const clients of spec.streams) {
    if (clients !== 1) {
      await context.dispose();
      context = await contextOf(clients);
    }
    // Each stream owns a sequence of the context; llama.cpp batches the sequences' steps together.
    const free = clients === 1 ? [first] : Array.from({ length: clients }, () => context.getSequence());
    const r = await concurrentStreams(clients, spec.seconds, async (i) => {
      const sequence = free.pop()!;
      try {
        return await llamaGenerate(sequence, variedPrompt(spec, i), spec.newTokens);
      } finally {
        free.push(sequence);
      }
    });
    tokensPerSecond[clients] = r.stats.throughput;
  }
  await context.dispose();
  await model.dispose();
  return { rssBefore, rss, greedy, tokensPerSecond };
}

/**
 * The contrib graph in an ONNX Runtime session as Nucleus's worker opens it (same threads, no spinning), one row
 * prefilled with the prompt and `newTokens` decode steps run: what the session holds, without the engine around it.
 */
async function probeOnnxRuntime(spec: ProbeSpec): Promise<ProbeResult> {
  const ort = await import('onnxruntime-node');
  const { ContribDecoderSession } = await import('@nucleus/core/internal/engine/llm/generation/contrib-session');
  const { GraphBuilder } = await import('@nucleus/sdk/onnx');
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: spec.threads,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  // The baseline holds a session of a one-node graph: ONNX Runtime's environment and thread pool are up.
  const g = new GraphBuilder('baseline');
  g.output(g.ops.mul(g.input('x', 'float32', [1]), 2, { outputs: ['y'] }), 'float32', [1]);
  const baseline = await ort.InferenceSession.create(g.toModel().encode(), options);
  await baseline.run({ x: new ort.Tensor('float32', new Float32Array([1]), [1]) });
  const rssBefore = rssAfterGc();
  if (!spec.path || !spec.config) return { rssBefore, rss: rssBefore, tokensPerSecond: {} };
  const session = await ort.InferenceSession.create(spec.path, options);
  const runner = new ContribDecoderSession(session, spec.config, { initialRows: 1 });
  await runner.admit([spec.promptIds]);
  for (let i = 0; i < spec.newTokens; i++) await runner.decode([spec.promptIds.at(-1)!]);
  const rss = rssAfterGc();
  await session.release();
  return { rssBefore, rss, tokensPerSecond: {} };
}

if (process.argv[1] === SELF) {
  const spec = JSON.parse(process.argv[2]!) as ProbeSpec;
  const probes = { nucleus: probeNucleus, 'node-llama-cpp': probeLlamaCpp, onnxruntime: probeOnnxRuntime };
  const result = await probes[spec.runtime](spec);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  // node-llama-cpp's and ORT's threads must not keep the process alive.
  process.exit(0);
}
