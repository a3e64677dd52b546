// Shared pieces of the generation-engine tests: the tiny-random Llama opened in this thread for loop-level tests,
// and small utilities for bounded waiting.
import * as ort from 'onnxruntime-node';
import { loadTinyLlama, type LoadedLlm } from '@nucleus/core/internal/engine/llm/index';
import { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';

ort.env.logLevel = 'fatal';

/** The built-in tiny Llama and a decoder session on it, in this thread. */
export async function openTinyLlama(): Promise<{ llm: LoadedLlm; session: ort.InferenceSession; runner: DecoderSession }> {
  const llm = await loadTinyLlama();
  const session = await ort.InferenceSession.create(llm.onnxPath, { intraOpNumThreads: 1, extra: { session: { intra_op: { allow_spinning: '0' } } } });
  return { llm, session, runner: new DecoderSession(session, llm.config) };
}

/** Polls `check` every 10 ms until it holds, failing after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
