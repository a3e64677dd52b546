import {
  badRequest,
  type ModelLoadRequest,
  type ModelRegistry,
  type ModelSwapRequest,
  type ModelUnloadOptions,
  NucleusError,
  notFound,
  type RegisteredModel,
} from '@nucleus/sdk';

/** A call the lifecycle made, as the registry received it. */
export type RegistryCall =
  | { op: 'load'; request: ModelLoadRequest }
  | { op: 'swap'; name: string; request: ModelSwapRequest }
  | { op: 'unload'; name: string; options?: ModelUnloadOptions };

/**
 * The SDK's ModelRegistry over a map, for the plugin's policy alone; the kernel's registry is exercised end to end
 * by the integration tests. A source starting `bad:` fails to load; `breaks:` also leaves the model failed.
 */
export class MemoryRegistry implements ModelRegistry {
  readonly calls: RegistryCall[] = [];
  readonly #models = new Map<string, RegisteredModel>();

  list(): RegisteredModel[] {
    return [...this.#models.values()];
  }

  get(name: string): RegisteredModel {
    const model = this.#models.get(name);
    if (!model) throw notFound('model_not_found', `no model "${name}"`);
    return model;
  }

  async load(request: ModelLoadRequest): Promise<RegisteredModel> {
    this.calls.push({ op: 'load', request });
    if (this.#models.has(request.name)) throw new NucleusError(409, 'model_exists', `"${request.name}" is loaded`);
    if (request.source?.startsWith('bad:')) throw badRequest('invalid_model', `cannot read ${request.source}`);
    const model = this.#model(request.name, request.version ?? '1', request.source);
    this.#models.set(request.name, model);
    return model;
  }

  async swap(name: string, request: ModelSwapRequest): Promise<RegisteredModel> {
    this.calls.push({ op: 'swap', name, request });
    const before = this.get(name);
    if (request.source.startsWith('breaks:')) {
      this.#models.set(name, { ...before, state: 'failed' });
      throw new Error(`the new version of ${name} crashed and took the old one with it`);
    }
    if (request.source.startsWith('bad:')) throw badRequest('invalid_model', `cannot read ${request.source}`);
    const version = request.version ?? String(Number(before.defaultVersion ?? '0') + 1);
    const after = this.#model(name, version, request.source);
    this.#models.set(name, after);
    return after;
  }

  async unload(name: string, options?: ModelUnloadOptions): Promise<void> {
    this.calls.push({ op: 'unload', name, ...(options ? { options } : {}) });
    this.get(name);
    this.#models.delete(name);
  }

  #model(name: string, version: string, source: string | undefined): RegisteredModel {
    return {
      name,
      kind: 'tensor',
      origin: 'runtime',
      state: 'ready',
      defaultVersion: version,
      replicas: 1,
      versions: [{ version, state: 'ready', replicas: 1, ...(source ? { source } : {}) }],
    };
  }
}
