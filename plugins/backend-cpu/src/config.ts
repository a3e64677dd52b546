/** ORT graph optimization levels, weakest first. */
export type GraphOptimizationLevel = 'disabled' | 'basic' | 'extended' | 'layout' | 'all';

/** The `plugin.backend-cpu` config section; its JSON Schema is `nucleus.configSchema` in package.json. */
export interface CpuBackendConfig {
  /** Threads one operator may use; 0 lets Nucleus choose (the CPUs this process may use, capped by a cgroup quota). */
  intraOpNumThreads: number;
  /** Threads running independent operators in parallel mode; 0 lets ORT choose. */
  interOpNumThreads: number;
  graphOptimizationLevel: GraphOptimizationLevel;
  enableCpuMemArena: boolean;
  executionMode: 'sequential' | 'parallel';
  /** Whether idle ORT worker threads busy-wait for work; off by default because spinning starves other work on small machines. */
  allowSpinning: boolean;
  /** Same input, same output bits: sequential, one thread, ORT's deterministic kernels. Overrides the thread and mode settings. */
  deterministic: boolean;
  /** Extra ORT session config entries (`session.*`, `mlas.*`), applied last. */
  sessionConfig: Record<string, string>;
}

/** What an empty config section means; must match the defaults in the package.json schema. */
export const CPU_DEFAULTS: Readonly<CpuBackendConfig> = Object.freeze({
  intraOpNumThreads: 0,
  interOpNumThreads: 0,
  graphOptimizationLevel: 'all',
  enableCpuMemArena: true,
  executionMode: 'sequential',
  allowSpinning: false,
  deterministic: false,
  sessionConfig: {},
});
