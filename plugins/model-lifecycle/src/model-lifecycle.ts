import {
  toNucleusError,
  type EventBus,
  type Logger,
  type ModelLoadRequest,
  type ModelRegistry,
  type ModelSwapRequest,
  type RegisteredModel,
} from '@nucleus/sdk';

/** The swap policy as the plugin's config gives it. */
export interface LifecyclePolicy {
  /** Default drain timeout of swaps and unloads, in ms. */
  drainTimeoutMs: number;
}

/**
 * Load, swap and unload with the plugin's policy: the drain timeout a request does not set, a rollback check after a
 * failed swap (the old version must still answer), and the `model.swapped` / `model.swapFailed` events.
 */
export class ModelLifecycle {
  constructor(
    private readonly registry: () => ModelRegistry,
    private readonly policy: LifecyclePolicy,
    private readonly events: EventBus,
    private readonly logger: Logger,
  ) {}

  list(): RegisteredModel[] {
    return this.registry().list();
  }

  async load(request: ModelLoadRequest): Promise<RegisteredModel> {
    const model = await this.registry().load(request);
    this.logger.info({ model: model.name, source: request.source, kind: model.kind }, 'model loaded');
    return model;
  }

  async swap(name: string, request: ModelSwapRequest): Promise<RegisteredModel> {
    const registry = this.registry();
    const before = registry.get(name);
    const started = performance.now();
    try {
      const after = await registry.swap(name, {
        ...request,
        drainTimeoutMs: request.drainTimeoutMs ?? this.policy.drainTimeoutMs,
      });
      const durationMs = performance.now() - started;
      // A swap of one version names that version and its successor; otherwise the default versions.
      const fromVersion = request.replaces ?? before.defaultVersion ?? '';
      const toVersion =
        request.replaces === undefined ? (after.defaultVersion ?? '') : (request.version ?? request.replaces);
      this.events.emit('model.swapped', {
        model: name,
        fromVersion,
        toVersion,
        source: request.source,
        durationMs,
      });
      this.logger.info(
        {
          model: name,
          from: fromVersion,
          to: toVersion,
          source: request.source,
          durationMs: Math.round(durationMs),
        },
        'model swapped',
      );
      return after;
    } catch (err) {
      const error = toNucleusError(err);
      const rolledBack = this.#stillServes(name, before, request.replaces);
      this.events.emit('model.swapFailed', { model: name, source: request.source, error: error.message, rolledBack });
      this.logger[rolledBack ? 'warn' : 'error'](
        { model: name, source: request.source, err: error.message, rolledBack },
        'model swap failed',
      );
      throw error;
    }
  }

  /** Unloads a model, or only its `version` (the others serve on). */
  async unload(name: string, drainTimeoutMs?: number, version?: string): Promise<void> {
    await this.registry().unload(name, {
      drainTimeoutMs: drainTimeoutMs ?? this.policy.drainTimeoutMs,
      ...(version !== undefined && { version }),
    });
    this.logger.info({ model: name, ...(version !== undefined && { version }) }, 'model unloaded');
  }

  // After a failed swap the version that served before (the one swapped, or the default) must serve still.
  #stillServes(name: string, before: RegisteredModel, replaced?: string): boolean {
    try {
      const now = this.registry().get(name);
      if (replaced !== undefined) {
        const v = now.versions.find((x) => x.version === replaced);
        return v !== undefined && (v.state === 'ready' || v.state === 'idle');
      }
      return now.defaultVersion === before.defaultVersion && (now.state === 'ready' || now.state === 'idle');
    } catch {
      return false;
    }
  }
}
