import { badRequest, type TokenLogprob, type TokenLogprobs } from '@nucleus/sdk';

// Log-probs as each API spells them. The engine computes them from the model's raw logits (log-softmax over the
// whole vocabulary, before penalties and temperature), as llama.cpp's `n_probs` and vLLM report them.

/** Most alternatives per token any route takes (OpenAI's bound on `top_logprobs`). */
export const MAX_TOP_LOGPROBS = 20;

/** `/v1/chat/completions`: `logprobs: true` asks for them, `top_logprobs` for alternatives (which needs `logprobs`). */
export function chatLogprobsOf(body: Record<string, unknown>): { logprobs?: number } {
  const top = typeof body.top_logprobs === 'number' ? body.top_logprobs : undefined;
  if (body.logprobs !== true) {
    if (top !== undefined && top > 0)
      throw badRequest('invalid_field', "'top_logprobs' needs 'logprobs': true", 'top_logprobs');
    return {};
  }
  return { logprobs: top ?? 0 };
}

/** `/v1/completions` (`logprobs`: how many alternatives) and the native routes (`n_probs`). */
export function countOf(value: unknown): { logprobs?: number } {
  return typeof value === 'number' ? { logprobs: value } : {};
}

function chatAlternative(t: TokenLogprob): { token: string; logprob: number; bytes: number[] } {
  return { token: t.token, logprob: t.logprob, bytes: t.bytes };
}

/** One entry of a chat choice's `logprobs.content`. */
export function chatLogprobEntry(lp: TokenLogprobs): Record<string, unknown> {
  return { ...chatAlternative(lp), top_logprobs: lp.top.map(chatAlternative) };
}

/** A chat choice's `logprobs` (null where the request did not ask). */
export function chatLogprobs(lps: readonly TokenLogprobs[] | undefined): Record<string, unknown> | null {
  return lps ? { content: lps.map(chatLogprobEntry), refusal: null } : null;
}

/** The legacy completions `logprobs` object: parallel lists, with `text_offset` counted from `offset`. */
export interface LegacyLogprobs {
  tokens: string[];
  token_logprobs: number[];
  top_logprobs: Record<string, number>[];
  text_offset: number[];
}

/** Legacy log-probs of `lps`, whose text starts at character `offset` of the choice's text. */
export function legacyLogprobs(lps: readonly TokenLogprobs[], offset: number): LegacyLogprobs {
  const out: LegacyLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  let at = offset;
  for (const lp of lps) {
    out.tokens.push(lp.token);
    out.token_logprobs.push(lp.logprob);
    out.top_logprobs.push(Object.fromEntries(lp.top.map((t) => [t.token, t.logprob])));
    out.text_offset.push(at);
    at += lp.token.length;
  }
  return out;
}

/** The native routes' shape: ids beside the text, as llama.cpp's `n_probs` gives them. */
export function nativeLogprobs(lp: TokenLogprobs): Record<string, unknown> {
  const one = (t: TokenLogprob) => ({ id: t.tokenId, token: t.token, logprob: t.logprob });
  return { ...one(lp), top_logprobs: lp.top.map(one) };
}
