import { float16FromBits } from '@nucleus/sdk/onnx';
import type { LogitsRow } from './sampler.js';

/** Most alternatives a request may ask for per token (OpenAI's bound on `top_logprobs`). */
export const MAX_TOP_LOGPROBS = 20;

/** A token's log-probability and the `top` most likely tokens at its step, as [id, logprob] pairs, most likely first. */
export interface RawTokenLogprobs {
  logprob: number;
  top: [number, number][];
}

/**
 * The log-probability of `tokenId` and the `top` most likely tokens of one row of logits: log-softmax over the whole
 * vocabulary of the model's raw logits, in double precision, before penalties, temperature or top-k/top-p — what
 * llama.cpp's `n_probs` and vLLM report by default, so the numbers describe the model, not the sampling settings.
 * Only called for requests that ask for log-probs: other requests pay nothing.
 */
export function tokenLogprobs(row: LogitsRow, tokenId: number, top: number): RawTokenLogprobs {
  const n = row instanceof Float32Array ? row.length : row.float16.length;
  const at = row instanceof Float32Array ? (i: number) => row[i]! : (i: number) => float16FromBits(row.float16[i]!);
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = at(i);
    if (v > max) max = v;
  }
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(at(i) - max);
  const logZ = max + Math.log(sum);
  // The `top` best ids, kept sorted (best first) by insertion: top is at most 20, so this beats sorting the vocabulary.
  const k = Math.min(top, n);
  const ids: number[] = [];
  const values: number[] = [];
  for (let i = 0; k > 0 && i < n; i++) {
    const v = at(i);
    if (ids.length === k && v <= values[k - 1]!) continue;
    let j = Math.min(ids.length, k - 1);
    while (j > 0 && values[j - 1]! < v) {
      values[j] = values[j - 1]!;
      ids[j] = ids[j - 1]!;
      j--;
    }
    values[j] = v;
    ids[j] = i;
  }
  return {
    logprob: tokenId >= 0 && tokenId < n ? at(tokenId) - logZ : -Infinity,
    top: ids.map((id, i) => [id, values[i]! - logZ]),
  };
}
