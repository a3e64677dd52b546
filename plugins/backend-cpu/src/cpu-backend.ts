import type { Backend, BackendProbe, SessionOptions } from '@nucleus/sdk';
import { CPU_DEFAULTS, type CpuBackendConfig } from './config.js';
import { cpuProbe, defaultIntraOpThreads, readCpuFacts, type CpuProbeInputs } from './detect.js';
import { applyOverrides, type OptionKind } from '@nucleus/sdk/backend-kit';

const OPTION_KINDS: { readonly [K in keyof CpuBackendConfig]: OptionKind } = {
  intraOpNumThreads: { type: 'integer', min: 0 },
  interOpNumThreads: { type: 'integer', min: 0 },
  graphOptimizationLevel: { type: 'enum', values: ['disabled', 'basic', 'extended', 'layout', 'all'] },
  enableCpuMemArena: { type: 'boolean' },
  executionMode: { type: 'enum', values: ['sequential', 'parallel'] },
  allowSpinning: { type: 'boolean' },
  deterministic: { type: 'boolean' },
  sessionConfig: { type: 'stringMap' },
};

/** ORT session config entries that make CPU results reproducible run to run. */
export const DETERMINISTIC_SESSION_CONFIG: Readonly<Record<string, string>> = Object.freeze({
  // Kernels with a fast non-deterministic path (e.g. atomics in reductions) take the deterministic one.
  'session.use_deterministic_compute': '1',
  // Flushing denormals changes results near zero; keep IEEE behaviour.
  'session.set_denormal_as_zero': '0',
});

/** Runs sessions on ORT's CPU execution provider; always usable, lowest rank. */
export class CpuBackend implements Backend {
  readonly name = 'cpu';
  readonly rank = 0;
  readonly config: Readonly<CpuBackendConfig>;
  readonly #inputs: CpuProbeInputs;
  #autoThreads: number | undefined;

  /**
   * `processes` is how many front processes share the machine's cores (`server.processes`), each with sessions of its
   * own: the automatic thread count is their share of the cores, so N processes do not run N× the threads there are
   * cores for.
   */
  constructor(
    config: Partial<CpuBackendConfig> = {},
    inputs: CpuProbeInputs = {},
    private readonly processes = 1,
  ) {
    this.config = Object.freeze({ ...CPU_DEFAULTS, ...config });
    this.#inputs = inputs;
  }

  /** Never throws: reads CPU and memory facts, cgroup limits applied. */
  async probe(): Promise<BackendProbe> {
    const facts = readCpuFacts(this.#inputs);
    this.#autoThreads = this.#share(defaultIntraOpThreads(facts));
    return cpuProbe(facts, this.#threads(this.config));
  }

  sessionOptions(overrides?: Record<string, unknown>): SessionOptions {
    const c = applyOverrides(this.config, overrides, OPTION_KINDS, this.name);
    const spin = c.allowSpinning && !c.deterministic ? '1' : '0';
    const extra: Record<string, string> = {
      'session.intra_op.allow_spinning': spin,
      'session.inter_op.allow_spinning': spin,
      ...(c.deterministic ? DETERMINISTIC_SESSION_CONFIG : {}),
      ...c.sessionConfig,
    };
    const interOp = c.deterministic ? 1 : c.interOpNumThreads;
    return {
      executionProviders: ['cpu'],
      intraOpNumThreads: this.#threads(c),
      ...(interOp > 0 && { interOpNumThreads: interOp }),
      graphOptimizationLevel: c.graphOptimizationLevel,
      enableCpuMemArena: c.enableCpuMemArena,
      executionMode: c.deterministic ? 'sequential' : c.executionMode,
      extra,
    };
  }

  #threads(c: CpuBackendConfig): number {
    // One thread: the order in which partial sums are combined no longer depends on scheduling.
    if (c.deterministic) return 1;
    if (c.intraOpNumThreads > 0) return c.intraOpNumThreads;
    this.#autoThreads ??= this.#share(defaultIntraOpThreads(readCpuFacts(this.#inputs)));
    return this.#autoThreads;
  }

  #share(threads: number): number {
    return Math.max(1, Math.floor(threads / Math.max(1, this.processes)));
  }
}
