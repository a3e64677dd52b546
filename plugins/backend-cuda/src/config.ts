/**
 * How cuDNN picks convolution algorithms: EXHAUSTIVE benchmarks them all on first run, HEURISTIC asks cuDNN, DEFAULT
 * takes the first.
 */
export type CudnnConvAlgoSearch = 'EXHAUSTIVE' | 'HEURISTIC' | 'DEFAULT';

/** TensorRT settings; with `enabled`, TensorRT gets first pick of the graph and CUDA runs what it leaves. */
export interface TensorRtConfig {
  enabled: boolean;
  /** Keep built engines on disk: building one takes minutes for a large model. */
  engineCache: boolean;
  engineCachePath: string;
}

/** The `plugin.backend-cuda` config section; its JSON Schema is `nucleus.configSchema` in package.json. */
export interface CudaBackendConfig {
  /** CUDA device index (after CUDA_VISIBLE_DEVICES is applied). */
  deviceId: number;
  cudnnConvAlgoSearch: CudnnConvAlgoSearch;
  /** Allow half-precision engines where the provider chooses precision (TensorRT). */
  fp16: boolean;
  tensorrt: TensorRtConfig;
  /** Extra ORT session config entries, applied last. */
  sessionConfig: Record<string, string>;
}

/** What an empty config section means; must match the defaults in the package.json schema. */
export const CUDA_DEFAULTS: Readonly<CudaBackendConfig> = Object.freeze({
  deviceId: 0,
  cudnnConvAlgoSearch: 'EXHAUSTIVE',
  fp16: false,
  tensorrt: Object.freeze({ enabled: false, engineCache: true, engineCachePath: '.cache/tensorrt' }),
  sessionConfig: {},
});
