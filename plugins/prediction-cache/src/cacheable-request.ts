/**
 * Which inference requests have one right answer, so a stored answer may stand in for running the model again:
 * tensor models always (KServe v2 `infer`, native `/infer` with tensors), embeddings always, and text generation when it is greedy
 * (`temperature` 0) or seeded, and not streamed. Each API is told apart by its path.
 */
export type Cacheability =
  | { cacheable: true; kind: 'tensor' | 'generation' | 'embedding'; ignore: readonly string[] }
  | { cacheable: false; reason: string };

const KSERVE_INFER = /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/infer$/;
const KSERVE_GENERATE = /^\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/generate$/;
const GENERATION = new Set(['/v1/chat/completions', '/v1/completions', '/generate', '/chat']);
const EMBEDDING = new Set(['/v1/embeddings', '/embeddings']);

/**
 * Whether the request at `path` with `body` may be answered from the cache, and which body keys do not count;
 * undefined for a route the cache knows nothing of (`/batch_infer` …).
 */
export function cacheability(path: string, body: Record<string, unknown>): Cacheability | undefined {
  // A v2 request's own `id` is echoed in the answer, nothing more: it is patched into a stored answer.
  if (KSERVE_INFER.test(path)) return { cacheable: true, kind: 'tensor', ignore: ['id'] };
  // Native `/infer` takes LLM requests too (a `prompt`): those are generations like any other.
  if (path === '/infer' && !('prompt' in body)) return { cacheable: true, kind: 'tensor', ignore: [] };
  if (EMBEDDING.has(path)) return { cacheable: true, kind: 'embedding', ignore: [] };
  if (GENERATION.has(path) || KSERVE_GENERATE.test(path) || path === '/infer') {
    if (body.stream === true) return { cacheable: false, reason: 'streamed' };
    const parameters = (typeof body.parameters === 'object' && body.parameters) || {};
    const sampling = { ...(parameters as Record<string, unknown>), ...body };
    const seed = sampling.seed ?? sampling.random_seed;
    if (sampling.temperature === 0 || (typeof seed === 'number' && Number.isInteger(seed)))
      return { cacheable: true, kind: 'generation', ignore: [] };
    return { cacheable: false, reason: 'sampled without a seed' };
  }
  return undefined;
}
