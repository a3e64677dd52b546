/** Which AMD execution provider to ask ORT for. */
export type RocmProvider = 'auto' | 'migraphx' | 'rocm';

/** The `plugin.backend-rocm` config section; its JSON Schema is `nucleus.configSchema` in package.json. */
export interface RocmBackendConfig {
  /** HIP device index (after HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES are applied). */
  deviceId: number;
  /** `auto` takes MIGraphX when ORT offers it (ORT dropped its ROCm provider in 1.23), else ROCm. */
  provider: RocmProvider;
  /** Let MIGraphX compile the graph in half precision. */
  fp16: boolean;
  /** Extra ORT session config entries, applied last. */
  sessionConfig: Record<string, string>;
}

/** What an empty config section means; must match the defaults in the package.json schema. */
export const ROCM_DEFAULTS: Readonly<RocmBackendConfig> = Object.freeze({
  deviceId: 0,
  provider: 'auto',
  fp16: false,
  sessionConfig: {},
});
