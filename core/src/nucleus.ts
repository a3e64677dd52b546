import { declaredBackends, unknownBackendError } from './engine/declared-backends.js';
import { Engines } from './engine/engines.js';
import type { GenerationEngine } from './engine/llm/generation/generation-engine.js';
import type { InferenceEngine } from './engine/inference-engine.js';
import type { MemoryPressure } from './engine/memory-pressure.js';
import type { ModelFormats } from './engine/model-formats.js';
import { Kernel, type KernelOptions } from './kernel/kernel.js';

/** How to build a runtime: the kernel's options, and whether the built-in models serve when none is configured. */
export interface NucleusOptions extends KernelOptions {
  /**
   * Serve the generated built-in models when no model is configured (default true); a list serves only the built-ins
   * it names, so a one-model command opens no others.
   */
  builtinModels?: boolean | readonly string[];
}

/**
 * The composed runtime: a kernel with the engines handed to it as a module. This is where the engines are built; the
 * kernel itself builds none.
 */
export class Nucleus extends Kernel {
  readonly #engines: Engines;

  private constructor(parts: ReturnType<typeof Kernel.prepare>, options: NucleusOptions) {
    super(parts.config, parts.logger, parts.discovery, options.serving);
    this.#engines = new Engines(this, { builtinModels: options.builtinModels ?? true });
    this.use(this.#engines);
    this.plugins.adopt(parts.found);
  }

  /**
   * Reads the config, discovers plugins and validates everything (see `Kernel.create`), then builds the engines.
   * Throws `ConfigError` when `backend` names a backend no enabled plugin declares: before any plugin starts.
   */
  static override create(options: NucleusOptions = {}): Nucleus {
    const parts = Kernel.prepare(options);
    const manifests = parts.found.flatMap((p) => p.manifest ?? []);
    const unknown = unknownBackendError(
      parts.config,
      declaredBackends(manifests, parts.config.get('plugins.disabled')),
    );
    if (unknown) throw unknown;
    return new Nucleus(parts, options);
  }

  /** The tensor-model engine (`Services.inference`). */
  get inference(): InferenceEngine {
    return this.#engines.inference;
  }

  /** The text-generation engine (`Services.generation`). */
  get generation(): GenerationEngine {
    return this.#engines.generation;
  }

  /** Free memory against `memory.pressureFreeBytes`. */
  get memory(): MemoryPressure {
    return this.#engines.memory;
  }

  /** The active model formats. */
  get formats(): ModelFormats {
    return this.#engines.formats;
  }
}
