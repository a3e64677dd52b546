// The LLM bench's client: SSE streams of the native /generate route, and closed loops of concurrent ones. A thread of
// its own can run them at a lower priority (`streamsFromThread`), standing in for clients on other machines.
import { setPriority } from 'node:os';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { GenerationService } from '@nucleus/sdk';
import { quantile, type RunStats } from './stats.js';

/** One streamed generation as the client saw it. */
export interface Streamed {
  ttftMs: number;
  totalMs: number;
  tokens: number;
  cachedTokens: number;
}

// Reads an SSE stream of the native /generate route: one `token` event per token, then `done` with usage.
export async function streamGenerate(base: string, body: Record<string, unknown>): Promise<Streamed> {
  const started = performance.now();
  const res = await fetch(`${base}/generate`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttftMs = NaN;
  let tokens = 0;
  let cachedTokens = 0;
  let buffer = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split('\n').find((l) => l.startsWith('data: '));
      if (!data) continue;
      const event = JSON.parse(data.slice(6)) as {
        token?: { id: number } | null;
        done?: boolean;
        usage?: { prompt_tokens_details?: { cached_tokens: number } };
        error?: { message: string };
      };
      if (event.error) throw new Error(event.error.message);
      if (event.token) {
        if (tokens === 0) ttftMs = performance.now() - started;
        tokens++;
      }
      if (event.done) cachedTokens = event.usage?.prompt_tokens_details?.cached_tokens ?? 0;
    }
  }
  return { ttftMs, totalMs: performance.now() - started, tokens, cachedTokens };
}

/** One generation through the engine API in this process (no HTTP, no SSE), timed as {@link streamGenerate} is. */
export async function engineGenerate(
  generation: GenerationService,
  body: { model: string; prompt: number[]; max_tokens: number },
): Promise<Streamed> {
  const started = performance.now();
  const stream = await generation.generate({
    model: body.model,
    prompt: body.prompt,
    maxTokens: body.max_tokens,
    temperature: 0,
    ignoreEos: true,
  });
  let ttftMs = NaN;
  let tokens = 0;
  let cachedTokens = 0;
  for await (const e of stream) {
    if (e.type === 'token') {
      if (tokens === 0) ttftMs = performance.now() - started;
      tokens++;
    } else if (e.type === 'done') cachedTokens = e.usage.cachedPromptTokens ?? 0;
  }
  return { ttftMs, totalMs: performance.now() - started, tokens, cachedTokens };
}

/** `clients` streams in a closed loop for `seconds`; tokens per second over all of them, TTFT and decode rate per stream. */
export async function concurrentStreams(
  clients: number,
  seconds: number,
  run: (i: number) => Promise<Streamed>,
): Promise<{ stats: RunStats; perStreamDecode: number; meanCached: number }> {
  const results: Streamed[] = [];
  let errors = 0;
  let n = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (performance.now() < end) {
        try {
          results.push(await run(n++));
        } catch {
          errors++;
        }
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  const tokens = results.reduce((s, r) => s + r.tokens, 0);
  // A request that produced no token has no TTFT (ignore_eos makes that rare).
  const ttfts = results.map((r) => r.ttftMs).filter(Number.isFinite);
  const decode = results.filter((r) => r.tokens > 1).map((r) => ((r.tokens - 1) * 1000) / (r.totalMs - r.ttftMs));
  return {
    stats: {
      throughput: tokens / elapsed,
      p50Ms: quantile(ttfts, 0.5),
      p99Ms: quantile(ttfts, 0.99),
      count: results.length,
      errors,
      seconds: elapsed,
    },
    perStreamDecode: decode.reduce((a, b) => a + b, 0) / Math.max(1, decode.length),
    meanCached: results.reduce((s, r) => s + r.cachedTokens, 0) / Math.max(1, results.length),
  };
}

/** What a closed loop of streams measured (see {@link concurrentStreams}). */
export type StreamsResult = Awaited<ReturnType<typeof concurrentStreams>>;

/** What {@link streamsFromThread} hands its thread. */
interface LoadSpec {
  base: string;
  clients: number;
  seconds: number;
  /** Request bodies, used in turn. */
  bodies: Record<string, unknown>[];
  niceness: number;
}

/**
 * {@link concurrentStreams} of `/generate` requests run from a thread of this process at OS niceness `niceness` (Linux
 * niceness is per thread), so that on a machine shared with the server the load generator takes its CPU from the
 * inference threads (at their niceness) rather than from the server's event loop, as a client elsewhere would not take
 * it at all. 0 runs it at this process's priority.
 */
export function streamsFromThread(spec: LoadSpec): Promise<StreamsResult> {
  const worker = new Worker(new URL(import.meta.url), { workerData: spec });
  return new Promise((resolve, reject) => {
    worker.once('message', (r: StreamsResult) => {
      resolve(r);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

if (!isMainThread && parentPort) {
  const spec = workerData as LoadSpec;
  if (spec.niceness > 0) setPriority(spec.niceness);
  const result = await concurrentStreams(spec.clients, spec.seconds, (i) =>
    streamGenerate(spec.base, spec.bodies[i % spec.bodies.length]!),
  );
  parentPort.postMessage(result);
}
