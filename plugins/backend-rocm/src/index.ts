import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import type { RocmBackendConfig } from './config.js';
import { RocmBackend } from './rocm-backend.js';

export {
  AMD_VENDOR_ID,
  gfxTargetName,
  parseKfdProperties,
  parseRocmSmiJson,
  queryRocmSmi,
  readDrmDevice,
  readKfdTopology,
  ROCM_SMI_ARGS,
  type DrmDeviceInfo,
  type KfdGpu,
  type RocmSmiCard,
  type RocmSmiResult,
} from './amd.js';
export { ROCM_DEFAULTS, type RocmBackendConfig, type RocmProvider } from './config.js';
export {
  applyVisibleDevices,
  detectRocm,
  ORT_AMD_LIBRARIES,
  type RocmProbe,
  type RocmProbeDetails,
  type RocmProbeInputs,
  type RocmProbeOptions,
} from './detect.js';
export { execFileRunner, type CommandResult, type CommandRunner, type OrtBackendInfo } from '@nucleus/sdk/backend-kit';
export { RocmBackend } from './rocm-backend.js';

/** The backend-rocm plugin: contributes the `rocm` backend. */
export default definePlugin<Partial<RocmBackendConfig>>({
  activate(ctx) {
    const backend = new RocmBackend(ctx.config);
    ctx.contribute(ExtensionPoints.backend, backend, { priority: backend.rank });
  },
});
