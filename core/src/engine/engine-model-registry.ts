import {
  badRequest,
  NucleusError,
  notFound,
  type GenerationModelInfo,
  type ModelInfo,
  type ModelLoadRequest,
  type ModelRegistry,
  type ModelServingOptions,
  type ModelSwapRequest,
  type ModelUnloadOptions,
  type RegisteredModel,
  type RegisteredModelState,
  type Sha256Pin,
} from '@nucleus/sdk';
import type { ConfigStore } from '../kernel/config/index.js';
import type { InferenceEngine } from './inference-engine.js';
import { compareVersions, type ConfiguredModel } from './model-repository.js';
import type { GenerationEngine } from './llm/generation/generation-engine.js';
import type { LlmModelSpec } from './llm/generation/served-model.js';
import type { ModelFormats } from './model-formats.js';
import { ModelLocator } from './model-locator.js';
import { ModelRoots } from './model-roots.js';

/** What the registry is built over. */
export interface EngineModelRegistryOptions {
  inference: InferenceEngine;
  generation: GenerationEngine;
  /** The effective config: configured LLMs are loaded again from their `models[]` entry. */
  config: Pick<ConfigStore, 'get'>;
  /** The active formats: the one that claims a source says which engine serves it. */
  formats: ModelFormats;
}

/**
 * The {@link ModelRegistry} over the kernel's two engines: a source goes to the generation engine when the format
 * that claims it loads LLMs, and to the tensor engine otherwise; a name goes to whichever engine serves it.
 */
export class EngineModelRegistry implements ModelRegistry {
  /** LLMs loaded at run time and since unloaded, so that a load by name alone (KServe's) finds their files again. */
  readonly #llmSpecs = new Map<string, LlmModelSpec>();
  // Run-time loads read only from under `allowedModelRoots` (when set).
  readonly #roots: ModelRoots;

  constructor(private readonly options: EngineModelRegistryOptions) {
    this.#roots = new ModelRoots(() => options.config.get('allowedModelRoots'));
  }

  list(): RegisteredModel[] {
    const tensors = this.options.inference.list().map(tensorModel);
    const llms = this.options.generation.list().map((m) => generationModel(m, this.#llmVersions(m.name)));
    return [...tensors, ...llms].sort((a, b) => a.name.localeCompare(b.name));
  }

  get(name: string): RegisteredModel {
    const llm = this.#llm(name);
    if (llm) return generationModel(llm, this.#llmVersions(name));
    return tensorModel(this.options.inference.model(name));
  }

  defaultVersion(name: string): string | undefined {
    return this.options.generation.defaultVersion(name) ?? this.options.inference.defaultVersion(name);
  }

  async load(request: ModelLoadRequest): Promise<RegisteredModel> {
    const { name, source, ...settings } = request;
    if (source === undefined) return this.#reload(name);
    // A new version of a served LLM loads beside the versions it has (the generation engine refuses one it has).
    const beside = this.#llm(name) !== undefined && settings.version !== undefined;
    if (!beside && (this.#llm(name) || this.#tensorLoaded(name))) {
      throw new NucleusError(
        409,
        'model_exists',
        `a model named '${name}' is already loaded; swap it (POST /admin/models/${name}/swap) or unload it first`,
      );
    }
    await this.#roots.check(source, settings.tokenizer === undefined ? [] : [settings.tokenizer]);
    // A source with a scheme is fetched here, once; the tensor engine reads the local copy.
    const resolved = await this.options.formats.resolve(source, pin(settings));
    if (ModelLocator.schemeOf(source) !== undefined) await this.#roots.checkCopy(source, resolved.source.path);
    if (resolved.match.kind === 'llm') {
      const spec = llmSpec(name, source, settings);
      await this.options.generation.load(spec);
      if (!beside) this.#llmSpecs.set(name, spec);
      return this.get(name);
    }
    if (beside)
      throw badRequest(
        'invalid_source',
        `model '${name}' is an LLM, but ${source} is served as a tensor model; a version of an LLM must be an LLM`,
        'source',
      );
    return tensorModel(
      await this.options.inference.loadSource({ ...tensorSettings(settings), name, path: resolved.source.path }),
    );
  }

  async swap(name: string, request: ModelSwapRequest): Promise<RegisteredModel> {
    const { source, drainTimeoutMs, replaces, ...settings } = request;
    const drain = drainTimeoutMs === undefined ? {} : { drainTimeoutMs };
    const llm = this.#llm(name);
    if (!llm && !this.#tensorLoaded(name))
      throw notFound(
        'model_not_found',
        `no model named '${name}' is loaded (loaded: ${this.#names()}); load it with POST /admin/models`,
      );
    await this.#roots.check(source, settings.tokenizer === undefined ? [] : [settings.tokenizer]);
    const resolved = await this.options.formats.resolve(source, pin(settings));
    if (ModelLocator.schemeOf(source) !== undefined) await this.#roots.checkCopy(source, resolved.source.path);
    const isLlm = resolved.match.kind === 'llm';
    if (llm && !isLlm)
      throw badRequest(
        'invalid_source',
        `model '${name}' is an LLM, but ${source} is served as a tensor model, not an LLM`,
        'source',
      );
    if (!llm && isLlm)
      throw badRequest(
        'invalid_source',
        `model '${name}' is a tensor model, but ${source} is an LLM; load it under a name of its own`,
        'source',
      );
    if (llm) {
      const spec = llmSpec(name, source, settings);
      await this.options.generation.swap(name, spec, { ...drain, ...(replaces !== undefined && { replaces }) });
      if (replaces === undefined) this.#llmSpecs.set(name, spec);
      return this.get(name);
    }
    if (replaces !== undefined)
      throw badRequest(
        'unsupported_swap',
        `model '${name}' is a tensor model: a swap replaces all its versions (POST /admin/models/${name}/swap); load a new version beside them from the model repository instead`,
        'version',
      );
    return tensorModel(
      await this.options.inference.swap(name, { ...tensorSettings(settings), path: resolved.source.path }, drain),
    );
  }

  async unload(name: string, options: ModelUnloadOptions = {}): Promise<void> {
    const drain = options.drainTimeoutMs === undefined ? {} : { drainTimeoutMs: options.drainTimeoutMs };
    const { version } = options;
    const llm = this.#llm(name);
    if (llm) return this.options.generation.unload(name, { ...drain, ...(version !== undefined && { version }) });
    if (!this.options.inference.list().some((m) => m.name === name))
      throw notFound('model_not_found', `no model named '${name}' is loaded (loaded: ${this.#names()})`);
    return this.options.inference.unload(name, version, drain);
  }

  // A load by name alone: an LLM from its config entry or the files it was last loaded from (again, when it still
  // serves), anything else from the tensor engine's sources.
  async #reload(name: string): Promise<RegisteredModel> {
    const spec = (await this.#configuredLlm(name)) ?? this.#llmSpecs.get(name);
    if (spec) {
      await this.#roots.check(spec.path, typeof spec.tokenizer === 'string' ? [spec.tokenizer] : []);
      if (this.#llm(name)) await this.options.generation.swap(name, spec);
      else await this.options.generation.load(spec);
      return this.get(name);
    }
    if (this.#llm(name))
      throw badRequest(
        'builtin_model',
        `model '${name}' is built in and loaded; there are no files to load it again from`,
        'name',
      );
    return tensorModel(await this.options.inference.load(name));
  }

  #llm(name: string): GenerationModelInfo | undefined {
    return this.options.generation.list().find((m) => m.name === name);
  }

  // Every version served under an LLM's name, lowest label first.
  #llmVersions(name: string): GenerationModelInfo[] {
    const all = this.options.generation.listVersions?.() ?? this.options.generation.list();
    return all.filter((m) => m.name === name).sort((a, b) => compareVersions(a.version ?? '1', b.version ?? '1'));
  }

  #tensorLoaded(name: string): boolean {
    return this.options.inference
      .list()
      .some((m) => m.name === name && m.versions.some((v) => v.state === 'ready' || v.state === 'loading'));
  }

  async #configuredLlm(name: string): Promise<LlmModelSpec | undefined> {
    const entry = this.options.config.get('models').find((m) => m.name === name);
    return entry && (await this.options.formats.resolve(entry.path, pin(entry))).match.kind === 'llm'
      ? entry
      : undefined;
  }

  #names(): string {
    return (
      this.list()
        .map((m) => m.name)
        .join(', ') || 'none'
    );
  }
}

// Which engine a source goes to. The one place this registry decides it, so that a change of how formats are
// recognised is made here once.
// The sha256 pin, as the formats take it.
function pin(o: { sha256?: Sha256Pin | undefined }): { sha256?: Sha256Pin } {
  return o.sha256 === undefined ? {} : { sha256: o.sha256 };
}

function llmSpec(name: string, path: string, o: ModelServingOptions): LlmModelSpec {
  return {
    name,
    path,
    ...(o.backend !== undefined && { backend: o.backend }),
    ...(o.graphStyle !== undefined && { graphStyle: o.graphStyle }),
    ...(o.quantize !== undefined && { quantize: o.quantize }),
    ...(o.quantizedMatmul !== undefined && { quantizedMatmul: o.quantizedMatmul }),
    ...(o.speculative !== undefined && { speculative: o.speculative }),
    ...(o.tokenizer !== undefined && { tokenizer: o.tokenizer }),
    ...(o.chatTemplate !== undefined && { chatTemplate: o.chatTemplate }),
    ...(o.sha256 !== undefined && { sha256: o.sha256 }),
    ...(o.workers !== undefined && { workers: o.workers }),
    ...(o.isolation !== undefined && { isolation: o.isolation }),
    ...(o.warmup !== undefined && { warmup: o.warmup }),
    ...(o.version !== undefined && { version: o.version }),
  };
}

// The settings a tensor model takes (an LLM's graph style and speculation mean nothing to it).
function tensorSettings(o: ModelServingOptions): Omit<ConfiguredModel, 'name' | 'path'> {
  const { graphStyle: _graphStyle, speculative: _speculative, quantizedMatmul: _quantizedMatmul, ...rest } = o;
  return rest;
}

function tensorModel(m: ModelInfo): RegisteredModel {
  const serving = m.versions.find((v) => v.version === m.defaultVersion) ?? m.versions.at(-1);
  const replicas = (v: ModelInfo['versions'][number]): number => v.status?.workers ?? 0;
  return {
    name: m.name,
    kind: 'tensor',
    origin: serving?.origin ?? 'config',
    state: serving?.state ?? 'unavailable',
    ...(m.defaultVersion !== undefined && { defaultVersion: m.defaultVersion }),
    ...(serving?.status && { backend: serving.status.backend }),
    replicas: serving ? replicas(serving) : 0,
    versions: m.versions.map((v) => ({
      version: v.version,
      state: v.state,
      ...(v.reason !== undefined && { reason: v.reason }),
      ...(v.path !== '' && { source: v.path }),
      ...(v.status && { backend: v.status.backend }),
      replicas: replicas(v),
    })),
  };
}

// An LLM name as the registry lists it: its default version `m` in front, and every version it serves.
function generationModel(m: GenerationModelInfo, versions: GenerationModelInfo[]): RegisteredModel {
  const state: RegisteredModelState = m.state;
  return {
    name: m.name,
    kind: m.kind,
    origin: m.origin,
    state,
    defaultVersion: m.version ?? '1',
    ...(m.backend !== undefined && { backend: m.backend }),
    replicas: m.workers?.length ?? 0,
    versions: (versions.length > 0 ? versions : [m]).map((v) => ({
      version: v.version ?? '1',
      state: v.state,
      ...(v.reason !== undefined && { reason: v.reason }),
      ...(v.path !== undefined && { source: v.path }),
      ...(v.backend !== undefined && { backend: v.backend }),
      replicas: v.workers?.length ?? 0,
    })),
  };
}
