import type { ErrorBodyFormat, NucleusError } from '@nucleus/sdk';

/** Where the Ollama API lives. */
export const OLLAMA_PREFIX = '/api/';

/** Ollama's error body: the message first, Nucleus's code beside it for a program to act on. */
export function ollamaErrorBody(error: NucleusError): { error: string; code: string } {
  return { error: error.message, code: error.code };
}

/**
 * Ollama's clients read an error as `{"error": "<message>"}` (the official one throws `ResponseError(body.error)`),
 * not as Nucleus's `{"error": {message, type, code}}`: so the server answers every error under `/api/` in that shape,
 * those before the route (a missing or wrong key, a rate limit) as well as the route's own.
 */
export const ollamaErrors: ErrorBodyFormat = { prefix: OLLAMA_PREFIX, body: ollamaErrorBody };
