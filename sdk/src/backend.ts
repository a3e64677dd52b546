import type { InferenceSession } from 'onnxruntime-common';

/** One compute device a backend can run on. */
export interface DeviceInfo {
  /** Index as the execution provider numbers it (`device_id`). */
  id: number;
  name: string;
  vendor: 'cpu' | 'nvidia' | 'amd';
  memoryTotalBytes?: number;
  memoryFreeBytes?: number;
  utilizationPercent?: number;
  driverVersion?: string;
  /** Vendor-specific facts (compute capability, gfx target, PCI bus id …). */
  extra?: Record<string, unknown>;
}

/** What a backend found when it looked at this machine. */
export interface BackendProbe {
  /** True when sessions can be created on this backend here. */
  usable: boolean;
  /** Why not, in words an operator can act on; set whenever `usable` is false. */
  reason?: string;
  devices: DeviceInfo[];
  /** ORT execution providers this backend would ask for, in order. */
  executionProviders: string[];
  /** Anything else worth showing in `/status` (library paths found, versions …). */
  details?: Record<string, unknown>;
}

/** ORT session options as plain JSON, so they can cross into a worker thread. */
export type SessionOptions = InferenceSession.SessionOptions;

/** An execution backend: a way of running ONNX sessions on some hardware. Contributed at the `backend` extension point. */
export interface Backend {
  /** Short name used in config: `cpu`, `cuda`, `rocm` … */
  readonly name: string;
  /** `backend: auto` picks the usable backend with the highest rank. */
  readonly rank: number;
  /** Looks at the machine; never throws, reports why not instead. */
  probe(): Promise<BackendProbe>;
  /** Session options for a model on this backend; `overrides` are the model's own backend options. */
  sessionOptions(overrides?: Record<string, unknown>): SessionOptions;
}
