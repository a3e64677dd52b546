// A server with the lifecycle, OpenAI and KServe plugins, and the admin and streaming calls the lifecycle tests make.
import { join } from 'node:path';
import { startTestKernel, type TestKernel, type TestResponse } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';

export const ADMIN = 'admin-key-0123456789';

const plugin = (id: string): string => join(REPO_ROOT, 'plugins', id);

/** A kernel on the built-in models with the plugins that serve, load and swap them, and an admin key. */
export function startLifecycleKernel(config: Record<string, unknown> = {}): Promise<TestKernel> {
  return startTestKernel({
    plugins: [plugin('api-openai'), plugin('api-kserve'), plugin('model-lifecycle')],
    env: { NUCLEUS_ADMIN_KEY: ADMIN },
    config: { 'scheduler.batchWindowMs': 2, ...config },
  });
}

/** A request with the admin key. */
export function admin(
  kit: TestKernel,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<TestResponse> {
  return kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN}` } });
}

/** The error object of an error response. */
export function errorOf(res: TestResponse): { message: string; code: string; type: string; param?: string } {
  return (res.body as { error: { message: string; code: string; type: string; param?: string } }).error;
}

/** How one streamed completion went. */
export interface StreamOutcome {
  status: number;
  text: string;
  /** The stream ended with `[DONE]` and no error event. */
  complete: boolean;
  /** The error event or body, when there was one. */
  error?: { code: string; message: string };
  /** Data chunks that carried text. */
  chunks: number;
}

/** Streams a greedy `/v1/completions` (SSE) to its end; `onFirstChunk` runs once its first chunk has arrived. */
export async function streamCompletion(
  kit: TestKernel,
  body: { model: string; prompt: string; max_tokens: number; ignore_eos?: boolean },
  onFirstChunk?: () => void,
): Promise<StreamOutcome> {
  const res = await fetch(new URL('/v1/completions', kit.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
    body: JSON.stringify({ ...body, temperature: 0, stream: true }),
  });
  if (!res.ok || !res.body) {
    const parsed = (await res.json().catch(() => ({}))) as { error?: { code: string; message: string } };
    return { status: res.status, text: '', complete: false, chunks: 0, ...(parsed.error && { error: parsed.error }) };
  }
  let text = '';
  let chunks = 0;
  let done = false;
  let error: StreamOutcome['error'];
  let buffer = '';
  const decoder = new TextDecoder();
  let event = 'message';
  for await (const part of res.body) {
    buffer += decoder.decode(part as Uint8Array, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, end).replace(/\r$/, '');
      buffer = buffer.slice(end + 1);
      if (line.startsWith('event:')) event = line.slice(6).trim();
      if (line === '') event = 'message';
      if (!line.startsWith('data:')) continue;
      const data = line.slice(5).trim();
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const parsed = JSON.parse(data) as { error?: { code: string; message: string }; choices?: { text: string }[] };
      if (event === 'error' || parsed.error) {
        error = parsed.error ?? { code: 'unknown', message: data };
        continue;
      }
      const piece = parsed.choices?.[0]?.text ?? '';
      text += piece;
      if (parsed.choices?.length) {
        if (chunks === 0) onFirstChunk?.();
        chunks++;
      }
    }
  }
  return { status: res.status, text, complete: done && error === undefined, chunks, ...(error && { error }) };
}

/** Waits, up to `timeoutMs`, until `ready()` holds; throws saying what it waited for otherwise. */
export async function until(ready: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
