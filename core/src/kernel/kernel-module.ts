/**
 * A part of the runtime that the kernel starts once its plugins are active and stops before they go: the engines.
 * The kernel knows modules only by this shape; whoever composes the runtime hands them over with `Kernel.use`.
 */
export interface KernelModule {
  readonly name: string;
  /** Runs once every plugin is active; a throw stops the kernel's start. */
  start(): Promise<void>;
  /** Runs before plugins deactivate. */
  stop(): Promise<void>;
  /** Configured models that must serve and do not, each with why (see `startup.requireModels`). */
  requiredModelsMissing?(): MissingModel[];
}

/** A configured model that must serve and does not. */
export interface MissingModel {
  readonly model: string;
  readonly reason: string;
  /** The source itself is wrong (it does not exist, or no format loads it): the config must change. */
  readonly badSource: boolean;
}

/**
 * Start-up refused: configured models that must serve do not. `nucleus serve` exits 2 when every one of them names a
 * bad source (a config mistake), 1 when a model failed while loading.
 */
export class RequiredModelsError extends Error {
  override name = 'RequiredModelsError';

  constructor(readonly missing: readonly MissingModel[]) {
    super(
      `${missing.map((m) => `model '${m.model}' failed to load: ${m.reason}`).join('; ')} (set models[].optional: true or startup.requireModels: false to start without ${missing.length === 1 ? 'it' : 'them'})`,
    );
  }

  /** Every missing model names a source that cannot be loaded as configured. */
  get badConfig(): boolean {
    return this.missing.every((m) => m.badSource);
  }
}
