// Soak: mixed traffic against a local `nucleus serve` for SOAK_SECONDS, counting how every request ended. The one
// number that must stay 0 is "no answer": a request that got neither a status nor a definite end of its stream.
import { readFileSync, writeFileSync } from 'node:fs';
import { machineInfo } from './machine.js';
import { startServerProcess } from './server-process.js';
import { record } from './report.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const CONCURRENCY = Number(process.env.SOAK_CONCURRENCY ?? 8);
const CLIENT_TIMEOUT_MS = 30_000;

/** How one request ended. */
interface Outcome {
  kind: string;
  /** `200`, `400` …, `stream completed`, `stream aborted`, `stream errored`, or `no answer`. */
  result: string;
  ms: number;
  detail?: string;
}

type Shot = (base: string, signal: AbortSignal) => Promise<{ result: string; detail?: string }>;

const json = (body: unknown): RequestInit => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: JSON.stringify(body),
});

async function plain(
  url: string,
  init: RequestInit,
  signal: AbortSignal,
): Promise<{ result: string; detail?: string }> {
  const res = await fetch(url, { ...init, signal });
  const text = await res.text();
  return { result: String(res.status), ...(res.status >= 500 && { detail: text.slice(0, 200) }) };
}

// Reads an SSE stream to its end: completed when it ends with [DONE], errored when it carries an error event or
// ends early, aborted when we cut it off on purpose after `abortAfter` chunks.
async function stream(
  url: string,
  body: unknown,
  signal: AbortSignal,
  abortAfter?: number,
): Promise<{ result: string; detail?: string }> {
  const cut = new AbortController();
  const both = AbortSignal.any([signal, cut.signal]);
  const res = await fetch(url, { ...json(body), signal: both });
  if (res.status !== 200) return { result: String(res.status), detail: (await res.text()).slice(0, 200) };
  let text = '';
  let chunks = 0;
  const decoder = new TextDecoder();
  try {
    for await (const chunk of res.body!) {
      text += decoder.decode(chunk as Uint8Array, { stream: true });
      chunks++;
      if (abortAfter !== undefined && chunks >= abortAfter) {
        cut.abort();
        return { result: 'stream aborted' };
      }
    }
  } catch (err) {
    if (cut.signal.aborted) return { result: 'stream aborted' };
    throw err;
  }
  if (/"error"/.test(text)) return { result: 'stream errored', detail: text.slice(-200) };
  return text.includes('[DONE]')
    ? { result: 'stream completed' }
    : { result: 'stream errored', detail: `ended without [DONE]: ${text.slice(-200)}` };
}

const SHOTS: Record<string, Shot> = {
  'tensor /infer': (b, s) =>
    plain(`${b}/infer`, json({ model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } }), s),
  'tensor /v2 infer': (b, s) =>
    plain(
      `${b}/v2/models/mlp-classifier/infer`,
      json({ inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.5, 0.1, 0.2, 0.3] }] }),
      s,
    ),
  chat: (b, s) =>
    plain(
      `${b}/v1/chat/completions`,
      json({ model: 'tiny-llama', messages: [{ role: 'user', content: 'Once upon a time' }], max_tokens: 24 }),
      s,
    ),
  'chat stream': (b, s) =>
    stream(
      `${b}/v1/chat/completions`,
      { model: 'tiny-llama', messages: [{ role: 'user', content: 'Tell a story' }], max_tokens: 32, stream: true },
      s,
    ),
  completion: (b, s) =>
    plain(`${b}/v1/completions`, json({ model: 'tiny-llama', prompt: 'The cat', max_tokens: 16 }), s),
  'completion stream, cancelled': (b, s) =>
    stream(
      `${b}/v1/completions`,
      { model: 'tiny-llama', prompt: 'Once', max_tokens: 200, ignore_eos: true, stream: true },
      s,
      3,
    ),
  embeddings: (b, s) =>
    plain(`${b}/v1/embeddings`, json({ model: 'bert-tiny', input: ['hello world', 'soak test'] }), s),
  'bad: invalid JSON': (b, s) =>
    plain(
      `${b}/v1/chat/completions`,
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"model": ' },
      s,
    ),
  'bad: wrong shape': (b, s) =>
    plain(
      `${b}/v2/models/mlp-classifier/infer`,
      json({ inputs: [{ name: 'input', shape: [1, 7], datatype: 'FP32', data: [1, 2, 3, 4, 5, 6, 7] }] }),
      s,
    ),
  'bad: unknown model': (b, s) =>
    plain(`${b}/infer`, json({ model: 'no-such-model', inputs: { input: [[1, 2, 3, 4]] } }), s),
};

async function shoot(base: string, kind: string): Promise<Outcome> {
  const started = performance.now();
  const signal = AbortSignal.timeout(CLIENT_TIMEOUT_MS);
  try {
    const r = await SHOTS[kind]!(base, signal);
    return { kind, ...r, ms: performance.now() - started };
  } catch (err) {
    // A client timeout or a dropped connection: the request got no definite answer.
    return { kind, result: 'no answer', ms: performance.now() - started, detail: (err as Error).message };
  }
}

/** `npm run bench -- soak`: SOAK_SECONDS of mixed traffic; records counts by outcome and every request left unanswered. */
export async function soakSuite(): Promise<string> {
  const server = await startServerProcess([], { NUCLEUS_SCHEDULER_BATCH_WINDOW_MS: '5' });
  const outcomes: Outcome[] = [];
  const kinds = Object.keys(SHOTS);
  const deadline = Date.now() + SECONDS * 1000;
  let n = 0;
  try {
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (Date.now() < deadline) outcomes.push(await shoot(server.url, kinds[n++ % kinds.length]!));
      }),
    );
  } finally {
    await server.stop();
  }
  const counts = new Map<string, Map<string, { count: number; totalMs: number; maxMs: number }>>();
  for (const o of outcomes) {
    const byResult = counts.get(o.kind) ?? new Map();
    counts.set(o.kind, byResult);
    const c = byResult.get(o.result) ?? { count: 0, totalMs: 0, maxMs: 0 };
    c.count++;
    c.totalMs += o.ms;
    c.maxMs = Math.max(c.maxMs, o.ms);
    byResult.set(o.result, c);
  }
  const unanswered = outcomes.filter((o) => o.result === 'no answer');
  const serverErrors = outcomes.filter((o) => /^5/.test(o.result) || o.result === 'stream errored');
  const rows = [...counts].flatMap(([kind, byResult]) =>
    [...byResult].map(([result, c]) => ({
      kind,
      result,
      count: c.count,
      meanMs: Math.round(c.totalMs / c.count),
      maxMs: Math.round(c.maxMs),
    })),
  );
  const machine = machineInfo();
  const notes = [
    `${SECONDS} s at concurrency ${CONCURRENCY} against one \`nucleus serve\` with the built-in models; ${outcomes.length} requests, ${unanswered.length} with no answer (client timeout ${CLIENT_TIMEOUT_MS / 1000} s).`,
    ...(SECONDS < 600
      ? [
          `A shorter run than the 10-minute soak (SOAK_SECONDS=600) this is meant for; run that one before relying on these numbers.`,
        ]
      : []),
    ...unanswered.map((o) => `no answer: ${o.kind} after ${Math.round(o.ms)} ms: ${o.detail ?? ''}`),
    ...serverErrors
      .slice(0, 10)
      .map((o) => `server error: ${o.kind} ${o.result}: ${o.detail ?? ''}`.replace(/\|/g, '/').replace(/\n/g, ' ')),
  ];
  const markdown = record('soak', machine, [], notes);
  const table = [
    '## Outcomes',
    '',
    '| request | outcome | count | mean ms | max ms |',
    '| --- | --- | ---: | ---: | ---: |',
    ...rows.map((r) => `| ${r.kind} | ${r.result} | ${r.count} | ${r.meanMs} | ${r.maxMs} |`),
    '',
  ];
  const full = markdown.replace('## Notes', `${table.join('\n')}\n## Notes`);
  const md = new URL('../results/soak.md', import.meta.url);
  writeFileSync(md, full);
  const jsonPath = new URL('../results/soak.json', import.meta.url);
  const saved = JSON.parse(readFileSync(jsonPath, 'utf8')) as Record<string, unknown>;
  writeFileSync(jsonPath, `${JSON.stringify({ ...saved, outcomes: rows, unanswered }, null, 2)}\n`);
  if (unanswered.length > 0) process.exitCode = 1;
  return full;
}
