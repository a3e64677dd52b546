import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { copyFile, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NucleusServer } from '@nucleus/core';
import * as ort from 'onnxruntime-node';
import { ensureTinyLlama } from '@nucleus/plugin-builtin-models';
import { createTokenizer, type LlmTokenizer, type LoadedLlm } from '@nucleus/sdk/llm';
import { loadLlm, loadTinyLlama, MODEL_CACHE } from './llm-models.js';
import { ContribDecoderSession } from '@nucleus/core/internal/engine/llm/generation/contrib-session';
import { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import { DEFAULT_WORKER_NICENESS } from '@nucleus/core/internal/engine/workers/worker-handle';
import { machineInfo } from './machine.js';
import { startServerProcess, type ServerProcess } from './server-process.js';
import { concurrentStreams, engineGenerate, streamGenerate, streamsFromThread, type StreamsResult } from './streams.js';
import { record, type ResultRow, type ResultTable } from './report.js';
import { quantile, summarise, type RunStats } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const STORIES = join(REPO, '..', 'shared', 'models', 'stories260K', 'stories260K.gguf');
const SCRATCH = join(REPO, 'bench', 'results', 'tmp');

/** What one model is benchmarked with. */
interface ModelCase {
  name: string;
  llm: LoadedLlm;
  tokenizer: LlmTokenizer;
  /** Tokens each stream generates in the decode runs. */
  decodeTokens: number;
  /** Length of the shared prefix in the prefix-cache runs, and of the prompt in the prefill runs. */
  longPrompt: number;
}

/** Deterministic token ids in `[3, vocab)`, different for every `seed`. */
function tokenIds(seed: number, n: number, vocab: number): number[] {
  let x = (seed * 2654435761 + 12345) >>> 0;
  return Array.from({ length: n }, () => {
    x = (x * 1664525 + 1013904223) >>> 0;
    return 3 + (x % (vocab - 3));
  });
}

/** Requests one after another for `seconds` (at least `min`); TTFT percentiles, and prompt tokens per second of TTFT. */
async function sequentialTtft(
  base: string,
  seconds: number,
  request: (i: number) => Record<string, unknown>,
  promptTokens: number,
  min = 5,
): Promise<{ stats: RunStats; meanCached: number }> {
  const ttfts: number[] = [];
  let cached = 0;
  const start = performance.now();
  for (let i = 0; i < min || performance.now() - start < seconds * 1000; i++) {
    const r = await streamGenerate(base, request(i));
    if (!Number.isFinite(r.ttftMs)) throw new Error('a request produced no token');
    ttfts.push(r.ttftMs);
    cached += r.cachedTokens;
  }
  const elapsed = (performance.now() - start) / 1000;
  const p50 = quantile(ttfts, 0.5);
  return {
    stats: {
      throughput: (promptTokens * 1000) / p50,
      p50Ms: p50,
      p99Ms: quantile(ttfts, 0.99),
      count: ttfts.length,
      errors: 0,
      seconds: elapsed,
    },
    meanCached: cached / ttfts.length,
  };
}

/** The settings every Nucleus server of this suite runs with, as `nucleus serve` arguments and as config. */
const SERVER_SETTINGS: Record<string, string> = {
  // Tracing would try to export spans; the bench measures the engine.
  'plugins.disabled': 'tracing,alerts',
  // A request on an idle engine starts at once whatever the window; one that arrives while others run waits for it,
  // and the default 50 ms would dominate TTFT on these tiny models.
  'scheduler.batchWindowMs': '2',
};

/** `nucleus serve` for one model in a process of its own: the load generator (this process) never shares its event loop. */
function serveProcess(c: ModelCase, path: string, extra: Record<string, string> = {}): Promise<ServerProcess> {
  const settings = { ...SERVER_SETTINGS, ...extra };
  return startServerProcess([
    '--model',
    `${c.name}=${path}`,
    ...Object.entries(settings).flatMap(([k, v]) => ['--set', `${k}=${v}`]),
  ]);
}

/** A server in this process, for the engine-API rows (no HTTP): what the engine does without HTTP and SSE. */
async function startInProcess(models: { name: string; path: string }[]): Promise<NucleusServer> {
  return NucleusServer.start({
    env: {},
    cli: {
      'server.port': 0,
      'plugins.watch': false,
      'logging.level': 'warn',
      'plugins.disabled': SERVER_SETTINGS['plugins.disabled']!.split(','),
      'scheduler.batchWindowMs': Number(SERVER_SETTINGS['scheduler.batchWindowMs']),
      models,
    },
  });
}

/** Samples of one metric family from a Prometheus exposition, with their labels. */
function samples(exposition: string, name: string): { labels: Record<string, string>; value: number }[] {
  const out: { labels: Record<string, string>; value: number }[] = [];
  for (const line of exposition.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const m = /^[^{\s]+(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[1] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ labels, value: Number(m[2]) });
  }
  return out;
}

async function scrape(base: string): Promise<string> {
  const res = await fetch(`${base}/metrics`);
  if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
  return res.text();
}

/** Cumulative bucket counts of `nucleus_token_delivery_seconds` for one model, by upper bound in seconds. */
function deliveryBuckets(exposition: string, model: string): Map<number, number> {
  const buckets = new Map<number, number>();
  for (const s of samples(exposition, 'nucleus_token_delivery_seconds_bucket')) {
    if (s.labels.model_name !== model) continue;
    buckets.set(s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), s.value);
  }
  return buckets;
}

/**
 * Token-to-socket delay between two scrapes: count, and p50/p99 in ms interpolated within the histogram's buckets
 * (as Prometheus' histogram_quantile does).
 */
function deliveryBetween(
  before: string,
  after: string,
  model: string,
): { count: number; p50Ms: number; p99Ms: number } {
  const a = deliveryBuckets(before, model);
  const b = deliveryBuckets(after, model);
  const bounds = [...b.keys()].sort((x, y) => x - y);
  const cumulative = bounds.map((le) => (b.get(le) ?? 0) - (a.get(le) ?? 0));
  const count = cumulative.at(-1) ?? 0;
  const at = (q: number): number => {
    if (count === 0) return NaN;
    const rank = q * count;
    const i = cumulative.findIndex((n) => n >= rank);
    const upper = bounds[i]!;
    const lower = i === 0 ? 0 : bounds[i - 1]!;
    if (!Number.isFinite(upper)) return lower * 1000;
    const below = i === 0 ? 0 : cumulative[i - 1]!;
    const inBucket = cumulative[i]! - below;
    return (lower + ((upper - lower) * (rank - below)) / Math.max(1, inBucket)) * 1000;
  };
  return { count, p50Ms: at(0.5), p99Ms: at(0.99) };
}

/** Sum of one histogram series (`<name>_sum`) whose labels include `labels`. */
function histogramSum(exposition: string, name: string, labels: Record<string, string>): number {
  return samples(exposition, `${name}_sum`)
    .filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((n, s) => n + s.value, 0);
}

/**
 * GETs /health back to back (10 ms apart) from a thread of its own, so the probe's timings do not wait on this
 * process's event loop, busy reading the streams; `stop` returns every latency in ms.
 */
function probeHealth(base: string): { stop(): Promise<number[]> } {
  const worker = new Worker(
    `const { parentPort, workerData } = require('node:worker_threads');
    let running = true;
    const ms = [];
    parentPort.once('message', () => (running = false));
    (async () => {
      while (running) {
        const t = performance.now();
        const res = await fetch(workerData + '/health');
        await res.arrayBuffer();
        if (res.ok) ms.push(performance.now() - t);
        await new Promise((r) => setTimeout(r, 10));
      }
      parentPort.postMessage(ms);
    })();`,
    { eval: true, workerData: base },
  );
  const done = new Promise<number[]>((resolve, reject) => {
    worker.once('message', (ms: number[]) => resolve(ms));
    worker.once('error', reject);
  });
  return {
    stop: async () => {
      worker.postMessage('stop');
      const ms = await done;
      await worker.terminate();
      return ms;
    },
  };
}

/**
 * Nucleus over HTTP, the server in its own process: decode rates at 1/4/16/32 streams with /health latency probed
 * meanwhile and token-to-socket delay read from the server's metrics, prefill rate, and TTFT of a long shared prefix
 * with and without the prefix cache. Then the engine API in this process (no HTTP).
 */
async function nucleusRuns(
  c: ModelCase,
  path: string,
  notes: string[],
): Promise<{ rows: ResultRow[]; single: number; ttft: number; prefill: number; greedy: string; latency: string[] }> {
  const rows: ResultRow[] = [];
  const latency: string[] = [];
  const vocab = c.llm.config.vocabSize;
  const bos = c.llm.config.bosTokenId;
  const start = (ids: number[]) => (bos === undefined ? ids : [bos, ...ids]);
  const decodeBody = (i: number) => ({
    model: c.name,
    prompt: start(tokenIds(i + 1, 4, vocab)),
    max_tokens: c.decodeTokens,
    temperature: 0,
    ignore_eos: true,
  });
  let single = NaN;
  let ttft = NaN;
  let greedy = '';
  let prefill = NaN;
  let server: ServerProcess | undefined;
  try {
    server = await serveProcess(c, path);
    const base = server.url;
    // Warm-up, and the greedy text the transformers.js run is compared with.
    const warm = await fetch(`${base}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: c.name,
        prompt: 'Once upon a time',
        max_tokens: 24,
        temperature: 0,
        ignore_eos: true,
      }),
    });
    greedy = ((await warm.json()) as { choices: { text: string }[] }).choices[0]!.text;
    const bodies = Array.from({ length: 4096 }, (_, i) => decodeBody(i));
    // The load generator runs at the inference workers' niceness (see streamsFromThread); the last run repeats 32
    // streams with it at the server's priority, competing with the server's event loop as no remote client would.
    const runs = [
      ...[1, 4, 16, 32].map((clients) => ({ clients, niceness: DEFAULT_WORKER_NICENESS })),
      { clients: 32, niceness: 0 },
    ];
    for (const { clients, niceness } of runs) {
      const before = await scrape(base);
      const probe = probeHealth(base);
      const r: StreamsResult = await streamsFromThread({ base, clients, seconds: SECONDS, bodies, niceness });
      const health = await probe.stop();
      const delivery = deliveryBetween(before, await scrape(base), c.name);
      if (clients === 1) single = r.stats.throughput;
      const sharing = niceness === 0 ? ', load generator at the server priority' : '';
      rows.push({
        label: `Nucleus over HTTP (SSE), ${clients} stream${clients > 1 ? 's' : ''} × ${c.decodeTokens} tokens${sharing} (p50/p99 = TTFT)`,
        stats: r.stats,
        ratio: r.stats.throughput / single,
        note:
          `${r.stats.count} requests; ${r.perStreamDecode.toFixed(0)} tok/s per stream after its first token; ` +
          `token to socket p50 ${delivery.p50Ms.toFixed(2)} / p99 ${delivery.p99Ms.toFixed(2)} ms over ${delivery.count} tokens; ` +
          `/health p50 ${quantile(health, 0.5).toFixed(2)} / p99 ${quantile(health, 0.99).toFixed(2)} ms over ${health.length} probes`,
      });
      if (clients === 32) {
        const healthP99 = quantile(health, 0.99);
        latency.push(
          `${c.name}, 32 streams${sharing}: /health p99 ${healthP99.toFixed(2)} ms (target < 50: ${healthP99 < 50 ? 'met' : 'NOT met'}); ` +
            `token to socket p99 ${delivery.p99Ms.toFixed(2)} ms (target < 10: ${delivery.p99Ms < 10 ? 'met' : 'NOT met'}).`,
        );
      }
    }
    // Prefill: long prompts that share nothing (their first tokens differ), one token out.
    const beforePrefill = await scrape(base);
    const prefillRun = await sequentialTtft(
      base,
      SECONDS,
      (i) => ({
        model: c.name,
        prompt: start(tokenIds(1000 + i, c.longPrompt, vocab)),
        max_tokens: 1,
        temperature: 0,
        ignore_eos: true,
      }),
      c.longPrompt + 1,
    );
    const afterPrefill = await scrape(base);
    // One request at a time: every reported group holds one prefill step, so the sums of the per-group means add up.
    const prefillPhase = { model_name: c.name, phase: 'prefill' };
    const prefillTokens =
      histogramSum(afterPrefill, 'nucleus_iteration_tokens', prefillPhase) -
      histogramSum(beforePrefill, 'nucleus_iteration_tokens', prefillPhase);
    const prefillSeconds =
      histogramSum(afterPrefill, 'nucleus_engine_step_duration_seconds', prefillPhase) -
      histogramSum(beforePrefill, 'nucleus_engine_step_duration_seconds', prefillPhase);
    prefill = prefillRun.stats.throughput;
    rows.push({
      label: `Nucleus, prefill of ${c.longPrompt + 1}-token prompts, one at a time (tokens/s of TTFT p50)`,
      stats: prefillRun.stats,
      note: `engine prefill steps alone: ${(prefillTokens / prefillSeconds).toFixed(0)} tok/s`,
    });
    // A long shared prefix (a system prompt) and a short question that differs each time.
    const shared = start(tokenIds(7, c.longPrompt - 8, vocab));
    const sharedBody = (i: number) => ({
      model: c.name,
      prompt: [...shared, ...tokenIds(5000 + i, 8, vocab)],
      max_tokens: 1,
      temperature: 0,
      ignore_eos: true,
    });
    const cached = await sequentialTtft(base, SECONDS, sharedBody, shared.length + 8);
    await server.stop();
    server = await serveProcess(c, path, { 'cache.prefix.enabled': 'false' });
    const uncached = await sequentialTtft(server.url, SECONDS, sharedBody, shared.length + 8);
    rows.push({
      label: `Nucleus, ${shared.length}-token shared prefix + 8 new, no prefix cache (TTFT)`,
      stats: uncached.stats,
      ratio: 1,
    });
    rows.push({
      label: `Nucleus, ${shared.length}-token shared prefix + 8 new, prefix cache (TTFT)`,
      stats: cached.stats,
      ratio: uncached.stats.p50Ms / cached.stats.p50Ms,
      note: `${cached.meanCached.toFixed(0)} prompt tokens from the cache on average; ratio = TTFT p50 without / with`,
    });
  } catch (err) {
    notes.push(`${c.name}: Nucleus run over HTTP failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await server?.stop().catch(() => undefined);
  }
  const inProcess = await startInProcess([{ name: c.name, path }]);
  try {
    // The same through the engine API in this process: what the engine does without HTTP and SSE framing.
    let engineSingle = NaN;
    for (const clients of [1, 4, 16, 32]) {
      const r = await concurrentStreams(clients, SECONDS, (i) =>
        engineGenerate(inProcess.kernel.generation, decodeBody(i)),
      );
      if (clients === 1) engineSingle = r.stats.throughput;
      rows.push({
        label: `Nucleus engine API in process, ${clients} stream${clients > 1 ? 's' : ''} × ${c.decodeTokens} tokens (p50/p99 = TTFT)`,
        stats: r.stats,
        ratio: r.stats.throughput / engineSingle,
        note: `${r.stats.count} requests; ${r.perStreamDecode.toFixed(0)} tok/s per stream after its first token; ratio: against 1 stream in process`,
      });
    }
    // TTFT without HTTP, through the engine API in this process, as transformers.js is measured.
    const firsts: number[] = [];
    const t0 = performance.now();
    while (firsts.length < 5 || performance.now() - t0 < SECONDS * 1000) {
      const t = performance.now();
      const stream = await inProcess.kernel.generation.generate({
        model: c.name,
        prompt: 'Once upon a time',
        maxTokens: 1,
        temperature: 0,
        ignoreEos: true,
      });
      for await (const e of stream) if (e.type === 'token') break;
      firsts.push(performance.now() - t);
    }
    ttft = quantile(firsts, 0.5);
    rows.push({
      label: `Nucleus engine API in process (no HTTP), 'Once upon a time', first token (TTFT)`,
      stats: {
        throughput: 1000 / ttft,
        p50Ms: ttft,
        p99Ms: quantile(firsts, 0.99),
        count: firsts.length,
        errors: 0,
        seconds: (performance.now() - t0) / 1000,
      },
      note: 'tokens/s column: requests/s at TTFT p50',
    });
  } catch (err) {
    notes.push(`${c.name}: Nucleus engine-API run failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    await inProcess.stop().catch(() => undefined);
  }
  return { rows, single, ttft, prefill, greedy, latency };
}

// transformers.js wants `config.json`, `tokenizer.json` and `onnx/model.onnx` in one folder.
async function transformersFolder(c: ModelCase, sourceConfigDir: string | undefined): Promise<string> {
  const dir = join(SCRATCH, 'transformers', c.name);
  await mkdir(join(dir, 'onnx'), { recursive: true });
  await copyFile(c.llm.onnxPath, join(dir, 'onnx', 'model.onnx'));
  if (sourceConfigDir) {
    for (const f of [
      'config.json',
      'generation_config.json',
      'tokenizer.json',
      'tokenizer_config.json',
      'special_tokens_map.json',
    ]) {
      if (existsSync(join(sourceConfigDir, f))) await copyFile(join(sourceConfigDir, f), join(dir, f));
    }
  }
  return dir;
}

/**
 * A Hugging Face `tokenizer.json` for a SentencePiece BPE vocabulary read from a GGUF (as the `transformers` Llama
 * converter writes it): merges are every split of a piece into two pieces, ranked by the merged piece's score.
 */
function sentencePieceTokenizerJson(pieces: string[], scores: number[], bos: number, eos: number): unknown {
  const vocab: Record<string, number> = {};
  pieces.forEach((p, i) => (vocab[p] = i));
  const merges: { pair: string; score: number; id: number }[] = [];
  pieces.forEach((p, id) => {
    if (id < 3 || /^<0x[0-9A-F]{2}>$/.test(p)) return;
    for (let i = 1; i < p.length; i++) {
      const [l, r] = [p.slice(0, i), p.slice(i)];
      if (vocab[l] !== undefined && vocab[r] !== undefined) merges.push({ pair: `${l} ${r}`, score: scores[id]!, id });
    }
  });
  merges.sort((a, b) => b.score - a.score || a.id - b.id);
  const special = (id: number, content: string) => ({
    id,
    content,
    single_word: false,
    lstrip: false,
    rstrip: false,
    normalized: false,
    special: true,
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [special(0, pieces[0]!), special(bos, pieces[bos]!), special(eos, pieces[eos]!)],
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: '▁' },
        { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: pieces[bos], type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: pieces[bos], type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { [pieces[bos]!]: { id: pieces[bos], ids: [bos], tokens: [pieces[bos]] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: pieces[0],
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: merges.map((m) => m.pair),
    },
  };
}

/** The stories260K folder for transformers.js: our ONNX graph of the GGUF, a Llama config and a tokenizer.json from its vocabulary. */
async function storiesTransformersFolder(c: ModelCase): Promise<string> {
  const dir = await transformersFolder(c, undefined);
  const spec = c.llm.tokenizer;
  if (spec.kind !== 'sentencepiece') throw new Error(`expected a SentencePiece vocabulary, got ${spec.kind}`);
  const { pieces, scores } = spec;
  const cfg = c.llm.config;
  const bos = cfg.bosTokenId ?? 1;
  const eos = cfg.eosTokenIds[0] ?? 2;
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({
      architectures: ['LlamaForCausalLM'],
      model_type: 'llama',
      vocab_size: cfg.vocabSize,
      hidden_size: cfg.hiddenSize,
      num_hidden_layers: cfg.numLayers,
      num_attention_heads: cfg.numHeads,
      num_key_value_heads: cfg.numKvHeads,
      head_dim: cfg.headDim,
      max_position_embeddings: cfg.maxContext,
      bos_token_id: bos,
      eos_token_id: eos,
      pad_token_id: 0,
      use_cache: true,
    }),
  );
  await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceTokenizerJson(pieces, scores, bos, eos)));
  await writeFile(
    join(dir, 'tokenizer_config.json'),
    JSON.stringify({
      tokenizer_class: 'LlamaTokenizer',
      add_bos_token: true,
      add_eos_token: false,
      bos_token: pieces[bos],
      eos_token: pieces[eos],
      unk_token: pieces[0],
      legacy: true,
      clean_up_tokenization_spaces: false,
    }),
  );
  return dir;
}

type Generator = (text: string, options: Record<string, unknown>) => Promise<{ generated_text: string }[]>;

/** The same model through @huggingface/transformers' text-generation pipeline on onnxruntime-node, single stream. */
async function transformersRuns(
  c: ModelCase,
  folder: string,
  prompt: string,
  ours: { single: number; ttft: number; prefill: number },
  notes: string[],
): Promise<{ rows: ResultRow[]; decode: number; ttft: number; prefill: number; greedy: string } | undefined> {
  let lib: {
    env: { allowRemoteModels: boolean; allowLocalModels: boolean; localModelPath: string };
    pipeline: (task: string, model: string, options: Record<string, unknown>) => Promise<Generator>;
  };
  try {
    lib = (await import('@huggingface/transformers' as string)) as typeof lib;
  } catch (err) {
    notes.push(
      `transformers.js is not installed (${err instanceof Error ? err.message : String(err)}); no comparison.`,
    );
    return undefined;
  }
  lib.env.allowRemoteModels = false;
  lib.env.allowLocalModels = true;
  lib.env.localModelPath = `${dirname(folder)}/`;
  let generate: Generator;
  try {
    generate = await lib.pipeline('text-generation', c.name, { dtype: 'fp32', device: 'cpu' });
  } catch (err) {
    notes.push(
      `${c.name}: transformers.js could not load the model from ${folder}: ${err instanceof Error ? err.message : String(err)}`,
    );
    return undefined;
  }
  const rows: ResultRow[] = [];
  const greedy = (
    await generate('Once upon a time', {
      max_new_tokens: 24,
      min_new_tokens: 24,
      do_sample: false,
      return_full_text: false,
    })
  )[0]!.generated_text;
  const time = async (fn: () => Promise<unknown>): Promise<number[]> => {
    const ms: number[] = [];
    const start = performance.now();
    while (ms.length < 3 || performance.now() - start < SECONDS * 1000) {
      const t = performance.now();
      await fn();
      ms.push(performance.now() - t);
    }
    return ms;
  };
  // TTFT: one new token; decode: the rest of a run of decodeTokens, as for Nucleus.
  const first = await time(() => generate('Once upon a time', { max_new_tokens: 1, do_sample: false }));
  const full = await time(() =>
    generate('Once upon a time', { max_new_tokens: c.decodeTokens, min_new_tokens: c.decodeTokens, do_sample: false }),
  );
  const ttft = quantile(first, 0.5);
  const whole = quantile(full, 0.5);
  const decode = (c.decodeTokens * 1000) / whole;
  rows.push({
    label: `transformers.js pipeline, 1 stream × ${c.decodeTokens} tokens (p50/p99 = TTFT of 'Once upon a time')`,
    stats: {
      throughput: decode,
      p50Ms: ttft,
      p99Ms: quantile(first, 0.99),
      count: full.length,
      errors: 0,
      seconds: SECONDS,
    },
    ratio: decode / ours.single,
    note: `${(((c.decodeTokens - 1) * 1000) / (whole - ttft)).toFixed(0)} tok/s after the first token; in process, no HTTP; ratio: against Nucleus 1 stream`,
  });
  const promptTokens = c.tokenizer.encode(prompt, { addBos: true }).length;
  const prefillMs = await time(() => generate(prompt, { max_new_tokens: 1, do_sample: false }));
  const prefill = (promptTokens * 1000) / quantile(prefillMs, 0.5);
  rows.push({
    label: `transformers.js pipeline, prefill of a ${promptTokens}-token text prompt (tokens/s of TTFT p50)`,
    stats: {
      throughput: prefill,
      p50Ms: quantile(prefillMs, 0.5),
      p99Ms: quantile(prefillMs, 0.99),
      count: prefillMs.length,
      errors: 0,
      seconds: SECONDS,
    },
    ratio: prefill / ours.prefill,
    note: 'in process, no HTTP; ratio: against the Nucleus prefill row',
  });
  return { rows, decode, ttft, prefill, greedy };
}

/** Story text of about `tokens` tokens (BOS included) for prompts given as text. */
function textOfLength(tokenizer: LlmTokenizer, tokens: number): string {
  const words =
    'Once upon a time there was a little girl named Lily. She loved to play outside in the park with her friends, and every day she'.split(
      ' ',
    );
  let text = '';
  for (let i = 0; tokenizer.encode(text, { addBos: true }).length < tokens; i++)
    text += (i ? ' ' : '') + words[i % words.length];
  return text;
}

const WARMUP_STEPS = 8;

/**
 * Decode steps straight on the runners, in this thread (no worker, HTTP or sampling): the generic graph, whose KV
 * cache is concatenated into new tensors every step, against the contrib graph updating its shared buffers in place.
 * Each stream prefills 16 tokens, then `steps` measured steps (after a few unmeasured ones) run for all streams together.
 */
export async function runnerDecodeRows(generic: LoadedLlm, contrib: LoadedLlm, steps: number): Promise<ResultRow[]> {
  const options: ort.InferenceSession.SessionOptions = {
    intraOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  };
  const sessions = {
    generic: await ort.InferenceSession.create(generic.onnxPath, options),
    contrib: await ort.InferenceSession.create(contrib.onnxPath, options),
  };
  const rows: ResultRow[] = [];
  try {
    for (const streams of [1, 16]) {
      const prompts = Array.from({ length: streams }, (_, i) => tokenIds(i + 1, 16, generic.config.vocabSize));
      const tokens = new Array<number>(streams).fill(1);
      const rates: Record<string, RunStats> = {};
      for (const style of ['generic', 'contrib'] as const) {
        const latencies: number[] = [];
        if (style === 'generic') {
          const runner = new DecoderSession(sessions.generic, generic.config);
          let kv = (await runner.prefill(prompts)).kv;
          for (let i = 0; i < steps + WARMUP_STEPS; i++) {
            const t = performance.now();
            kv = (await runner.decode(kv, tokens)).kv;
            if (i >= WARMUP_STEPS) latencies.push(performance.now() - t);
          }
        } else {
          const runner = new ContribDecoderSession(sessions.contrib, contrib.config, { initialRows: streams });
          await runner.admit(prompts);
          for (let i = 0; i < steps + WARMUP_STEPS; i++) {
            const t = performance.now();
            await runner.decode(tokens);
            if (i >= WARMUP_STEPS) latencies.push(performance.now() - t);
          }
        }
        const decodeMs = latencies.reduce((a, b) => a + b, 0);
        rates[style] = summarise(latencies, decodeMs / 1000, steps * streams);
      }
      rows.push({
        label: `runner decode, generic graph, ${streams} stream${streams > 1 ? 's' : ''} (p50/p99: ms per step)`,
        stats: rates.generic!,
      });
      rows.push({
        label: `runner decode, contrib graph (resident KV, new K/V appended), ${streams} stream${streams > 1 ? 's' : ''} (p50/p99: ms per step)`,
        stats: rates.contrib!,
        ratio: rates.contrib!.throughput / rates.generic!.throughput,
        note: 'ratio: contrib over generic',
      });
    }
  } finally {
    await sessions.generic.release();
    await sessions.contrib.release();
  }
  return rows;
}

/** The LLM suite: Nucleus on the tiny Llama and stories260K over HTTP, against transformers.js on the same graphs. */
export async function llmSuite(): Promise<string> {
  const tables: ResultTable[] = [];
  const notes: string[] = [];
  const cases: { c: ModelCase; path: string; folder: () => Promise<string> }[] = [];
  const tinyDir = await ensureTinyLlama(MODEL_CACHE);
  const tiny = await loadLlm(tinyDir, { name: 'tiny-llama' });
  const tinyCase: ModelCase = {
    name: 'tiny-llama',
    llm: tiny,
    tokenizer: createTokenizer(tiny.tokenizer),
    decodeTokens: 128,
    longPrompt: 192,
  };
  cases.push({ c: tinyCase, path: tinyDir, folder: () => transformersFolder(tinyCase, tinyDir) });
  if (existsSync(STORIES)) {
    const stories = await loadLlm(STORIES, { name: 'stories260K' });
    const storiesCase: ModelCase = {
      name: 'stories260K',
      llm: stories,
      tokenizer: createTokenizer(stories.tokenizer),
      decodeTokens: 256,
      longPrompt: 384,
    };
    cases.push({ c: storiesCase, path: STORIES, folder: () => storiesTransformersFolder(storiesCase) });
  } else {
    notes.push(`stories260K skipped: ${STORIES} is absent.`);
  }
  const summary: string[] = [];
  const latency: string[] = [];
  for (const { c, path, folder } of cases) {
    const ours = await nucleusRuns(c, path, notes);
    latency.push(...ours.latency);
    const rows = [...ours.rows];
    const theirs = await transformersRuns(c, await folder(), textOfLength(c.tokenizer, c.longPrompt + 1), ours, notes);
    if (theirs) {
      rows.push(...theirs.rows);
      notes.push(
        `${c.name}: greedy text of 'Once upon a time' (24 tokens) ${theirs.greedy === ours.greedy ? 'is the same' : 'differs'} in Nucleus and transformers.js` +
          (theirs.greedy === ours.greedy
            ? '.'
            : `: Nucleus ${JSON.stringify(ours.greedy)}, transformers.js ${JSON.stringify(theirs.greedy)}.`),
      );
      summary.push(
        `${c.name}, Nucleus against transformers.js, 1 stream: decode ${(ours.single / theirs.decode).toFixed(2)}× (Nucleus over HTTP / transformers.js in process), TTFT ${(ours.ttft / theirs.ttft).toFixed(1)}× longer (both in process), prefill ${(ours.prefill / theirs.prefill).toFixed(2)}× (Nucleus over HTTP / transformers.js in process).`,
      );
    }
    if (c.name === 'tiny-llama')
      rows.push(...(await runnerDecodeRows(c.llm, await loadTinyLlama({ graphStyle: 'contrib' }), c.decodeTokens)));
    else if (c.name === 'stories260K')
      rows.push(
        ...(await runnerDecodeRows(
          c.llm,
          await loadLlm(STORIES, { name: 'stories260K', graphStyle: 'contrib' }),
          c.decodeTokens,
        )),
      );
    tables.push({
      title: `${c.name} (${c.llm.config.numLayers} layers, hidden ${c.llm.config.hiddenSize}, vocab ${c.llm.config.vocabSize}, context ${c.llm.config.maxContext})`,
      unit: 'tokens',
      rows,
    });
  }
  notes.push(
    ...summary,
    `Each run lasts ${SECONDS} s. Decode rows: tokens/s summed over all streams (ratio: against 1 stream of the same kind); p50/p99 are TTFT in ms. Prefill rows: prompt tokens per second of TTFT p50. Prefix-cache rows: ratio is TTFT p50 without the cache over with it.`,
    ...latency,
    'Nucleus runs through HTTP (native /generate, SSE, one event per token) with greedy sampling, ignore_eos and scheduler.batchWindowMs 2; the server (`nucleus serve`) runs in a process of its own, the load generator in a thread of this one, on the same cores, at the niceness of the inference workers (10), so that it takes its CPU from inference rather than from the server\'s event loop, as a client on another machine would not take it at all; the row marked "load generator at the server priority" repeats 32 streams without that. While the streams run, a thread of this process GETs /health every 10 ms; token to socket is the server\'s nucleus_token_delivery_seconds histogram over the run (from a token being sampled in the generation thread to its SSE write), p50/p99 interpolated within its buckets. The engine-API rows call the generation service of a server in this process (no HTTP, no SSE): the gap between the two is what the HTTP and SSE framing of every token costs.',
    'transformers.js runs the same ONNX graph through its text-generation pipeline on onnxruntime-node in this process, one stream (it has no continuous batching); its ratio column compares with Nucleus at 1 stream.',
  );
  return record('llm', machineInfo(), tables, notes);
}
