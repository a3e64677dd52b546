import { definePlugin, ExtensionPoints, optionalService, ServiceRefs, type PluginContext } from '@nucleus/sdk';
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
export default definePlugin({
  deps: { processGroup: optionalService(ServiceRefs.processGroup) },
  activate(ctx: PluginContext<Partial<CpuBackendConfig>>, { processGroup }) {
    const backend = new CpuBackend(ctx.config, {}, processGroup?.size ?? 1);
    ctx.contribute(ExtensionPoints.backend, backend, { priority: backend.rank });
  },
});
