import { badRequest } from './errors.js';
import type { GenerationService } from './generation.js';

/**
 * The LLM a generation request that names no model goes to: `server.defaultModel` where it is set, otherwise the one
 * LLM the engine serves. With several LLMs and no default the request is ambiguous: 400 `model_required`, naming the
 * models it could have meant, so the caller can pick one (or the operator can set the default).
 */
export function defaultModelOf(service: GenerationService, configured: string | undefined): string {
  if (configured) return configured;
  const llms = service.list().filter((m) => m.kind === 'llm');
  if (llms.length === 1) return llms[0]!.name;
  if (llms.length === 0)
    throw badRequest('model_required', "'model' is required: this server serves no LLM to default to", 'model');
  throw badRequest(
    'model_required',
    `'model' is required: this server serves several LLMs (${llms.map((m) => m.name).join(', ')}); name one, or set server.defaultModel`,
    'model',
  );
}
