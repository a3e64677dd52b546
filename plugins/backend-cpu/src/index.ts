import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import type { CpuBackendConfig } from './config.js';
import { CpuBackend } from './cpu-backend.js';

export { CPU_DEFAULTS, type CpuBackendConfig, type GraphOptimizationLevel } from './config.js';
export { CpuBackend, DETERMINISTIC_SESSION_CONFIG } from './cpu-backend.js';
export {
  cgroupCpuLimit,
  cgroupMemory,
  cpuProbe,
  defaultIntraOpThreads,
  readCpuFacts,
  type CpuFacts,
  type CpuHost,
  type CpuProbeInputs,
} from './detect.js';

/** The backend-cpu plugin: contributes the `cpu` backend. */
export default definePlugin<Partial<CpuBackendConfig>>({
  activate(ctx) {
    const backend = new CpuBackend(ctx.config);
    ctx.contribute(ExtensionPoints.backend, backend, { priority: backend.rank });
  },
});
