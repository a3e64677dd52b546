import type { Backend, SessionOptions } from '@nucleus/sdk';
import { CUDA_DEFAULTS, type CudaBackendConfig } from './config.js';
import { detectCuda, type CudaProbe, type CudaProbeInputs } from './detect.js';
import { applyOverrides, type OptionKind } from '@nucleus/sdk/backend-kit';

const OPTION_KINDS: { readonly [K in keyof CudaBackendConfig]: OptionKind } = {
  deviceId: { type: 'integer', min: 0 },
  cudnnConvAlgoSearch: { type: 'enum', values: ['EXHAUSTIVE', 'HEURISTIC', 'DEFAULT'] },
  fp16: { type: 'boolean' },
  tensorrt: {
    type: 'object',
    fields: { enabled: { type: 'boolean' }, engineCache: { type: 'boolean' }, engineCachePath: { type: 'string' } },
  },
  sessionConfig: { type: 'stringMap' },
};

/** ORT's provider options for a config, by ORT's own option names; `deviceId` is the one every binding reads. */
export function cudaProviderOptions(c: CudaBackendConfig): {
  cuda: Record<string, unknown>;
  tensorrt: Record<string, unknown>;
} {
  return {
    cuda: { name: 'cuda', deviceId: c.deviceId, cudnn_conv_algo_search: c.cudnnConvAlgoSearch },
    tensorrt: {
      name: 'tensorrt',
      deviceId: c.deviceId,
      trt_fp16_enable: c.fp16,
      trt_engine_cache_enable: c.tensorrt.engineCache,
      trt_engine_cache_path: c.tensorrt.engineCachePath,
    },
  };
}

/**
 * Provider option keys whose configured value differs from ORT's default, i.e. the ones it matters whether the binding
 * passes on.
 */
export function tunedProviderOptionKeys(c: CudaBackendConfig): string[] {
  const keys: string[] = [];
  if (c.cudnnConvAlgoSearch !== 'EXHAUSTIVE') keys.push('cudnn_conv_algo_search');
  if (c.tensorrt.enabled && c.fp16) keys.push('trt_fp16_enable');
  if (c.tensorrt.enabled && c.tensorrt.engineCache) keys.push('trt_engine_cache_enable', 'trt_engine_cache_path');
  return keys;
}

/** Runs sessions on NVIDIA GPUs through ORT's CUDA provider, with TensorRT first when enabled and present. */
export class CudaBackend implements Backend {
  readonly name = 'cuda';
  readonly rank = 100;
  readonly config: Readonly<CudaBackendConfig>;
  readonly #inputs: CudaProbeInputs;
  #tensorrtAvailable: boolean | undefined;

  constructor(config: Partial<CudaBackendConfig> = {}, inputs: CudaProbeInputs = {}) {
    this.config = Object.freeze({
      ...CUDA_DEFAULTS,
      ...config,
      tensorrt: { ...CUDA_DEFAULTS.tensorrt, ...config.tensorrt },
    });
    this.#inputs = inputs;
  }

  async probe(): Promise<CudaProbe> {
    try {
      const probe = await detectCuda(this.#inputs, {
        deviceId: this.config.deviceId,
        tensorrt: this.config.tensorrt.enabled,
        providerOptionKeys: tunedProviderOptionKeys(this.config),
      });
      this.#tensorrtAvailable = probe.details.tensorrt.available;
      return probe;
    } catch (err) {
      // Only an injected runner or ORT listing can throw; Backend.probe must not.
      const reason = `CUDA detection failed: ${err instanceof Error ? err.message : String(err)}`;
      return {
        usable: false,
        reason,
        devices: [],
        executionProviders: ['cuda', 'cpu'],
        details: {
          nvidiaSmi: 'failed',
          onnxruntime: { providers: [], missingLibraries: [] },
          tensorrt: { enabled: this.config.tensorrt.enabled, available: false },
          problems: [reason],
          warnings: [],
        },
      };
    }
  }

  sessionOptions(overrides?: Record<string, unknown>): SessionOptions {
    const c = applyOverrides(this.config, overrides, OPTION_KINDS, this.name);
    const providers = cudaProviderOptions(c);
    // An unloadable TensorRT provider makes ORT reject the whole session, so leave it out once a probe found it
    // missing.
    const withTensorRt = c.tensorrt.enabled && this.#tensorrtAvailable !== false;
    const executionProviders = [
      ...(withTensorRt ? [providers.tensorrt] : []),
      providers.cuda,
      'cpu',
    ] as SessionOptions['executionProviders'];
    return {
      executionProviders,
      graphOptimizationLevel: 'all',
      extra: {
        // Only the CPU fallback kernels use these threads; spinning them burns a core per session for nothing.
        'session.intra_op.allow_spinning': '0',
        'session.inter_op.allow_spinning': '0',
        ...c.sessionConfig,
      },
    };
  }
}
