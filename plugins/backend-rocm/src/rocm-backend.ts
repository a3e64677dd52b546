import type { Backend, SessionOptions } from '@nucleus/sdk';
import { ROCM_DEFAULTS, type RocmBackendConfig } from './config.js';
import { detectRocm, type RocmProbe, type RocmProbeInputs } from './detect.js';
import { applyOverrides, type OptionKind } from '@nucleus/sdk/backend-kit';

const OPTION_KINDS: { readonly [K in keyof RocmBackendConfig]: OptionKind } = {
  deviceId: { type: 'integer', min: 0 },
  provider: { type: 'enum', values: ['auto', 'migraphx', 'rocm'] },
  fp16: { type: 'boolean' },
  sessionConfig: { type: 'stringMap' },
};

/** Runs sessions on AMD GPUs through ORT's MIGraphX (or older ROCm) execution provider. */
export class RocmBackend implements Backend {
  readonly name = 'rocm';
  readonly rank = 90;
  readonly config: Readonly<RocmBackendConfig>;
  readonly #inputs: RocmProbeInputs;
  #provider: 'migraphx' | 'rocm' | undefined;

  constructor(config: Partial<RocmBackendConfig> = {}, inputs: RocmProbeInputs = {}) {
    this.config = Object.freeze({ ...ROCM_DEFAULTS, ...config });
    this.#inputs = inputs;
  }

  async probe(): Promise<RocmProbe> {
    try {
      const probe = await detectRocm(this.#inputs, { deviceId: this.config.deviceId, provider: this.config.provider });
      this.#provider = probe.details.provider;
      return probe;
    } catch (err) {
      // Only an injected runner or ORT listing can throw; Backend.probe must not.
      const reason = `ROCm detection failed: ${err instanceof Error ? err.message : String(err)}`;
      return {
        usable: false,
        reason,
        devices: [],
        executionProviders: ['migraphx', 'cpu'],
        details: { kfd: false, rocmSmi: 'failed', onnxruntime: { providers: [] }, problems: [reason], warnings: [] },
      };
    }
  }

  sessionOptions(overrides?: Record<string, unknown>): SessionOptions {
    const c = applyOverrides(this.config, overrides, OPTION_KINDS, this.name);
    const name = c.provider === 'auto' ? (this.#provider ?? 'migraphx') : c.provider;
    // ORT's own provider option names; bindings that read only deviceId ignore the rest.
    const ep: Record<string, unknown> =
      name === 'migraphx'
        ? { name, deviceId: c.deviceId, migraphx_fp16_enable: c.fp16 }
        : { name, deviceId: c.deviceId };
    return {
      executionProviders: [ep, 'cpu'] as SessionOptions['executionProviders'],
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
