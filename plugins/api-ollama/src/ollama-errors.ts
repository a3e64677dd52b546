import { NucleusError, toNucleusError, type Hooks } from '@nucleus/sdk';

/** Where the Ollama API lives: its errors are answered in Ollama's shape. */
export const OLLAMA_PREFIX = '/api/';

/**
 * Ollama's clients read an error as `{"error": "<message>"}` (the official one throws `ResponseError(body.error)`),
 * not as Nucleus's `{"error": {message, type, code}}`: so every error under `/api/` once the route is known — a body
 * that is not JSON, a failed check, an unknown model, an engine refusal — leaves with its status and headers and
 * Ollama's body, the message first and Nucleus's code beside it for a program to act on. Errors before the route
 * (a missing or wrong key) keep the server's own shape, as every route's do.
 */
export function ollamaErrorShape(): Hooks {
  return {
    async preParsing(ctx, next) {
      if (!ctx.path.startsWith(OLLAMA_PREFIX)) return next();
      try {
        await next();
      } catch (err) {
        const error = fromHttpError(err) ?? toNucleusError(err);
        if (error.status >= 500 && error.code === 'internal_error') throw err;
        if (ctx.headerSent || !ctx.writable) return;
        ctx.status = error.status;
        ctx.set(error.headers);
        ctx.body = { error: error.message, code: error.code };
      }
    },
  };
}

// The server's body limit is an http-errors object (status 413, `expose`), as Koa's own are.
function fromHttpError(err: unknown): NucleusError | undefined {
  const e = err as { status?: number; expose?: boolean; message?: string };
  if (err instanceof NucleusError || typeof e?.status !== 'number' || !e.expose) return undefined;
  return new NucleusError(e.status, e.status === 413 ? 'payload_too_large' : 'bad_request', e.message ?? 'bad request');
}
