// Shared pieces of the generation-engine tests: the tiny-random Llama opened in this thread for loop-level tests,
// the sequences those tests feed a loop, and small utilities for bounded waiting.
import * as ort from 'onnxruntime-node';
import { loadTinyLlama, type LlmTokenizer, type LoadedLlm } from '../helpers/llm.js';
import { DecoderSession } from '@nucleus/core/internal/engine/llm/generation/decoder-session';
import type { SequenceInit } from '@nucleus/core/internal/engine/llm/generation/generation-loop';
import { DEFAULT_SAMPLING, type SamplingParams } from '@nucleus/core/internal/engine/llm/generation/sampler';

ort.env.logLevel = 'fatal';

/** The built-in tiny Llama and a decoder session on it, in this thread. */
export async function openTinyLlama(): Promise<{
  llm: LoadedLlm;
  session: ort.InferenceSession;
  runner: DecoderSession;
}> {
  const llm = await loadTinyLlama();
  const session = await ort.InferenceSession.create(llm.onnxPath, {
    intraOpNumThreads: 1,
    extra: { session: { intra_op: { allow_spinning: '0' } } },
  });
  return { llm, session, runner: new DecoderSession(session, llm.config) };
}

/** Greedy sampling. */
export const GREEDY: SamplingParams = { ...DEFAULT_SAMPLING, temperature: 0 };

/** Prompts of assorted lengths (one with multi-byte characters) for the loop-level tests. */
export const LOOP_PROMPTS = [
  'Once upon a time',
  'The little dog was running and jumping in the grass.',
  'Lily',
  'She liked to play in the park with her friends. One day the sun was shining',
  'Café, naïve, héllo',
  'and the birds were singing',
];

/**
 * A sequence as a loop takes it: `prompt` (text, encoded with BOS, or token ids), greedy, EOS ignored, with a stream
 * decoder of its own; `overrides` last.
 */
export function loopSequence(
  tokenizer: LlmTokenizer,
  llm: LoadedLlm,
  id: number,
  prompt: string | number[],
  overrides: Partial<SequenceInit> = {},
): SequenceInit {
  const promptIds = typeof prompt === 'string' ? tokenizer.encode(prompt, { addBos: true }) : prompt;
  return {
    id,
    promptIds,
    params: GREEDY,
    seed: id,
    maxTokens: 30,
    stop: [],
    eosTokenIds: llm.config.eosTokenIds,
    ignoreEos: true,
    priority: 'normal',
    decoder: tokenizer.createStreamDecoder({ prefix: promptIds }),
    ...overrides,
  };
}

/** Polls `check` every 10 ms until it holds, failing after `timeoutMs`. */
export async function until(check: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
