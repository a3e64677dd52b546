import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import type { GenerationModelInfo, GenerationService, InferenceHooks, RouteContribution } from '@nucleus/sdk';
import { disconnectSignal } from './disconnect-signal.js';
import { addressOf, ollamaName } from './model-names.js';
import { EMBED_SCHEMA, EMBEDDINGS_SCHEMA, NAMED_SCHEMA, validator } from './ollama-schemas.js';

/** The Ollama release whose API these routes follow (and whose official client the tests run): `/api/version`. */
export const OLLAMA_API_VERSION = '0.6.4';

/** What `/api/ps` says a loaded model stays loaded until: Nucleus keeps its models until they are unloaded. */
const LOADED_UNTIL = '9999-12-31T23:59:59Z';

interface EmbedBody {
  model: string;
  input: string | string[];
  dimensions?: number;
}
interface EmbeddingsBody {
  model: string;
  prompt: string;
}
interface NamedBody {
  model?: string;
  name?: string;
}

const checkEmbed = validator<EmbedBody>(EMBED_SCHEMA);
const checkEmbeddings = validator<EmbeddingsBody>(EMBEDDINGS_SCHEMA);
const checkNamed = validator<NamedBody>(NAMED_SCHEMA);

/** A model's files on disk in bytes, a folder's added up (0 for a built-in, or one loaded from a URI such as hf://). */
function sizeOf(info: GenerationModelInfo): number {
  if (!info.path) return 0;
  try {
    const top = statSync(info.path);
    if (!top.isDirectory()) return top.size;
    return readdirSync(info.path, { recursive: true, encoding: 'utf8' })
      .map((f) => statSync(join(info.path!, f)))
      .reduce((sum, s) => sum + (s.isFile() ? s.size : 0), 0);
  } catch {
    return 0;
  }
}

/** The format Ollama's `details.format` names: the file type a model was loaded from ('' for a built-in). */
function formatOf(info: GenerationModelInfo): string {
  if (!info.path) return '';
  // A Hub download is a folder: what it holds says its format.
  const file = statSync(info.path, { throwIfNoEntry: false })?.isDirectory()
    ? (readdirSync(info.path).find((f) => /\.(gguf|onnx|bin)$/i.test(f)) ?? '')
    : info.path;
  const ext = extname(file).slice(1).toLowerCase();
  return ext === 'gguf' ? 'gguf' : ext === 'bin' ? 'llama2c' : 'onnx';
}

/** A stable id of one version of a model (Ollama's manifest digest names the same thing: what `name:tag` is now). */
function digestOf(info: GenerationModelInfo): string {
  return createHash('sha256')
    .update(`${info.name}\0${info.version ?? '1'}\0${info.path ?? ''}\0${info.created}`)
    .digest('hex');
}

function details(info: GenerationModelInfo) {
  return {
    parent_model: '',
    format: formatOf(info),
    family: info.kind === 'embedding' ? 'embedding' : 'llm',
    families: [info.kind],
    parameter_size: '',
    quantization_level: '',
  };
}

/** Every version of every model, each once, with whether it is its name's default (`name:latest`). */
function served(service: GenerationService): { info: GenerationModelInfo; isDefault: boolean }[] {
  const defaults = service.list();
  const all = service.listVersions?.() ?? defaults;
  return all.map((info) => ({
    info,
    isDefault: defaults.some((d) => d.name === info.name && (d.version ?? '1') === (info.version ?? '1')),
  }));
}

/**
 * The model routes of the Ollama API: `/api/tags` (each model's default version as `name:latest`, other versions as
 * `name:VERSION`), `/api/show`, `/api/ps` (the ones loaded now), `/api/version`, and the embeddings, `/api/embed`
 * (normalised vectors, several inputs) and the older `/api/embeddings` (one prompt, the vector as the model gives it).
 */
export function modelRoutes(generation: () => GenerationService, hooks: InferenceHooks): RouteContribution[] {
  const entry = (info: GenerationModelInfo, isDefault: boolean) => {
    const name = ollamaName(info, isDefault);
    return {
      name,
      model: name,
      modified_at: new Date(info.created * 1000).toISOString(),
      size: sizeOf(info),
      digest: digestOf(info),
      details: details(info),
    };
  };
  return [
    {
      method: 'GET',
      path: '/api/tags',
      handler: () => ({ models: served(generation()).map(({ info, isDefault }) => entry(info, isDefault)) }),
    },
    {
      method: 'GET',
      path: '/api/ps',
      handler: () => ({
        models: served(generation())
          .filter(({ info }) => info.state === 'ready')
          .map(({ info, isDefault }) => ({
            ...entry(info, isDefault),
            expires_at: LOADED_UNTIL,
            size_vram: 0,
            context_length: info.maxContext,
          })),
      }),
    },
    {
      method: 'POST',
      path: '/api/show',
      handler: (ctx) => {
        const body = checkNamed((ctx.request as { body?: unknown }).body);
        const service = generation();
        const address = addressOf(service, (body.model ?? body.name)!);
        const info = service.get(address.model, address.version);
        return {
          modelfile: '',
          parameters: '',
          template: '',
          details: details(info),
          model_info: {
            'general.architecture': 'nucleus',
            'general.basename': info.name,
            'nucleus.context_length': info.maxContext,
            ...(info.dimensions !== undefined && { 'nucleus.embedding_length': info.dimensions }),
          },
          capabilities: info.kind === 'embedding' ? ['embedding'] : ['completion'],
          modified_at: new Date(info.created * 1000).toISOString(),
        };
      },
    },
    { method: 'GET', path: '/api/version', handler: () => ({ version: OLLAMA_API_VERSION }) },
    {
      method: 'POST',
      path: '/api/embed',
      handler: (ctx) => {
        const started = process.hrtime.bigint();
        const body = checkEmbed((ctx.request as { body?: unknown }).body);
        const service = generation();
        const address = addressOf(service, body.model);
        const inputs = typeof body.input === 'string' ? [body.input] : body.input;
        return hooks.run(
          { ...address, body: body as unknown as Record<string, unknown> },
          ctx.headers,
          async (routed) => {
            if (inputs.length === 0 || inputs.every((i) => i === ''))
              return { model: body.model, embeddings: [], total_duration: 0, load_duration: 0, prompt_eval_count: 0 };
            const result = await service.embed(
              {
                model: routed.model,
                ...(routed.version !== undefined && { version: routed.version }),
                input: inputs,
                ...(body.dimensions !== undefined && { dimensions: body.dimensions }),
                normalize: true,
                requestId: (ctx.state as { requestId?: string }).requestId ?? '',
              },
              disconnectSignal(ctx),
            );
            return {
              model: body.model,
              embeddings: result.embeddings.map((v) => Array.from(v)),
              total_duration: Number(process.hrtime.bigint() - started),
              load_duration: 0,
              prompt_eval_count: result.promptTokens,
            };
          },
          ctx,
        );
      },
    },
    {
      method: 'POST',
      path: '/api/embeddings',
      handler: (ctx) => {
        const body = checkEmbeddings((ctx.request as { body?: unknown }).body);
        const service = generation();
        const address = addressOf(service, body.model);
        return hooks.run(
          { ...address, body: body as unknown as Record<string, unknown> },
          ctx.headers,
          async (routed) => {
            if (body.prompt === '') return { embedding: [] };
            const result = await service.embed(
              {
                model: routed.model,
                ...(routed.version !== undefined && { version: routed.version }),
                input: body.prompt,
                normalize: false,
                requestId: (ctx.state as { requestId?: string }).requestId ?? '',
              },
              disconnectSignal(ctx),
            );
            return { embedding: Array.from(result.embeddings[0]!) };
          },
          ctx,
        );
      },
    },
  ];
}
