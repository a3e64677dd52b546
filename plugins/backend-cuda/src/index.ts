import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import type { CudaBackendConfig } from './config.js';
import { CudaBackend } from './cuda-backend.js';

export { CUDA_DEFAULTS, type CudaBackendConfig, type CudnnConvAlgoSearch, type TensorRtConfig } from './config.js';
export { CudaBackend, cudaProviderOptions, tunedProviderOptionKeys } from './cuda-backend.js';
export {
  applyCudaVisibleDevices,
  CUDA_RUNTIME_LIBRARIES,
  detectCuda,
  MIN_DRIVER_VERSION,
  ORT_CUDA_LIBRARIES,
  ORT_TENSORRT_LIBRARY,
  TENSORRT_RUNTIME_LIBRARY,
  type CudaProbe,
  type CudaProbeDetails,
  type CudaProbeInputs,
  type CudaProbeOptions,
} from './detect.js';
export { execFileRunner, type CommandResult, type CommandRunner, type OrtBackendInfo } from '@nucleus/sdk/backend-kit';
export { findSharedLibraries, locateOrtInstall, type LibrarySearch, type OrtInstall } from '@nucleus/sdk/backend-kit';
export {
  NVIDIA_SMI_FIELDS,
  nvidiaSmiArgs,
  parseNvidiaDriverVersion,
  parseNvidiaGpuInformation,
  parseNvidiaSmiCsv,
  queryNvidiaSmi,
  readProcDriverNvidia,
  type NvidiaProcDriver,
  type NvidiaProcGpu,
  type NvidiaSmiGpu,
  type NvidiaSmiResult,
} from './nvidia.js';

/** The backend-cuda plugin: contributes the `cuda` backend. */
export default definePlugin<Partial<CudaBackendConfig>>({
  activate(ctx) {
    const backend = new CudaBackend(ctx.config);
    ctx.contribute(ExtensionPoints.backend, backend, { priority: backend.rank });
  },
});
