import { join } from 'node:path';
import type { BackendProbe, DeviceInfo } from '@nucleus/sdk';
import {
  bindingMentions,
  execFileRunner,
  findSharedLibraries,
  ortInstallDetails,
  presentFiles,
  probeOrt,
  type MachineInputs,
} from '@nucleus/sdk/backend-kit';
import { queryNvidiaSmi, readProcDriverNvidia, type NvidiaProcGpu, type NvidiaSmiGpu } from './nvidia.js';

/** What CUDA detection reads (`env`: CUDA_VISIBLE_DEVICES, LD_LIBRARY_PATH). */
export type CudaProbeInputs = MachineInputs;

/** What the backend's config asks detection to check. */
export interface CudaProbeOptions {
  deviceId: number;
  /** Check TensorRT too. */
  tensorrt: boolean;
  /** Provider option keys set to non-default values; reported when the binding cannot pass them on. */
  providerOptionKeys?: readonly string[];
}

// A type alias rather than an interface so it fits BackendProbe's Record-typed `details`.
/** The `details` of a CUDA probe, as `/status` shows them. */
export type CudaProbeDetails = {
  driverVersion?: string;
  nvidiaSmi: 'ok' | 'missing' | 'failed';
  cudaVisibleDevices?: string;
  onnxruntime: {
    version?: string;
    packageDir?: string;
    binaryDir?: string;
    /** Providers the binding was built with (`listSupportedBackends()`). */
    providers: string[];
    missingLibraries: string[];
  };
  /** Where the loader finds the CUDA 12 / cuDNN 9 libraries the provider links against. */
  cudaRuntime?: { found: Record<string, string>; missing: string[] };
  tensorrt: { enabled: boolean; available: boolean; reason?: string };
  /** Everything that makes the backend unusable; `reason` is the first. */
  problems: string[];
  /** Things that do not block the backend but an operator should know. */
  warnings: string[];
};

/** A CUDA probe with typed details. */
export interface CudaProbe extends BackendProbe {
  details: CudaProbeDetails;
}

/** Provider libraries `ONNXRUNTIME_NODE_INSTALL=cuda12` adds next to the binding. */
export const ORT_CUDA_LIBRARIES = ['libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so'] as const;
/** The TensorRT provider library from the same download. */
export const ORT_TENSORRT_LIBRARY = 'libonnxruntime_providers_tensorrt.so';
/** What the CUDA 12 build of the provider loads at session creation. */
export const CUDA_RUNTIME_LIBRARIES = [
  'libcudart.so.12',
  'libcublas.so.12',
  'libcublasLt.so.12',
  'libcufft.so.11',
  'libcurand.so.10',
  'libcudnn.so.9',
] as const;
/** TensorRT 10, which the onnxruntime-node 1.30 TensorRT provider is built against. */
export const TENSORRT_RUNTIME_LIBRARY = 'libnvinfer.so.10';
/** The oldest driver that runs CUDA 12.x applications (minor-version compatibility). */
export const MIN_DRIVER_VERSION = '525.60.13';

function versionAtLeast(version: string, min: string): boolean {
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return true;
}

interface VisibleGpu extends NvidiaSmiGpu {
  busId?: string;
}

/**
 * GPUs CUDA numbers under a `CUDA_VISIBLE_DEVICES` value, in CUDA order; like CUDA, stops at the first entry it cannot
 * match.
 */
export function applyCudaVisibleDevices<G extends { index: number; uuid: string }>(
  gpus: readonly G[],
  value: string | undefined,
): G[] {
  if (value === undefined) return [...gpus];
  const chosen: G[] = [];
  for (const raw of value.split(',')) {
    const token = raw.trim();
    const gpu = /^\d+$/.test(token)
      ? gpus.find((g) => g.index === Number(token))
      : token.startsWith('GPU-')
        ? single(gpus.filter((g) => g.uuid.startsWith(token)))
        : undefined;
    if (gpu === undefined || chosen.includes(gpu)) break;
    chosen.push(gpu);
  }
  return chosen;
}

function single<T>(items: T[]): T | undefined {
  return items.length === 1 ? items[0] : undefined;
}

function mergeGpus(smi: NvidiaSmiGpu[] | undefined, proc: NvidiaProcGpu[]): VisibleGpu[] {
  if (smi !== undefined) {
    return smi.map((g) => {
      const p = proc.find((q) => q.uuid !== undefined && q.uuid === g.uuid);
      return p === undefined ? g : { ...g, busId: p.busId };
    });
  }
  // nvidia-smi numbers GPUs by PCI bus id, so without it that order stands in. CUDA agrees on machines of one GPU
  // model or with CUDA_DEVICE_ORDER=PCI_BUS_ID; otherwise it puts the fastest first.
  return proc
    .filter((p) => !p.excluded)
    .sort((a, b) => a.busId.localeCompare(b.busId))
    .map((p, index) => ({ index, name: p.model ?? 'NVIDIA GPU', uuid: p.uuid ?? '', busId: p.busId }));
}

function toDevice(gpu: VisibleGpu, id: number, driverVersion: string | undefined): DeviceInfo {
  const MiB = 1024 * 1024;
  const device: DeviceInfo = { id, name: gpu.name, vendor: 'nvidia' };
  if (gpu.memoryTotalMiB !== undefined) device.memoryTotalBytes = gpu.memoryTotalMiB * MiB;
  if (gpu.memoryFreeMiB !== undefined) device.memoryFreeBytes = gpu.memoryFreeMiB * MiB;
  if (gpu.utilizationPercent !== undefined) device.utilizationPercent = gpu.utilizationPercent;
  const driver = gpu.driverVersion ?? driverVersion;
  if (driver !== undefined) device.driverVersion = driver;
  device.extra = {
    nvidiaSmiIndex: gpu.index,
    ...(gpu.uuid !== '' && { uuid: gpu.uuid }),
    ...(gpu.computeCapability !== undefined && { computeCapability: gpu.computeCapability }),
    ...(gpu.busId !== undefined && { busId: gpu.busId }),
    ...(gpu.memoryUsedMiB !== undefined && { memoryUsedBytes: gpu.memoryUsedMiB * MiB }),
  };
  return device;
}

/** Looks for NVIDIA GPUs and a CUDA-capable onnxruntime-node; never throws, says why not instead. */
export async function detectCuda(
  inputs: CudaProbeInputs = {},
  options: CudaProbeOptions = { deviceId: 0, tensorrt: false },
): Promise<CudaProbe> {
  const root = inputs.root ?? '/';
  const run = inputs.run ?? execFileRunner();
  const env = inputs.env ?? process.env;
  const platform = inputs.platform ?? process.platform;
  const arch = inputs.arch ?? process.arch;
  const problems: string[] = [];
  const warnings: string[] = [];

  // The driver and its GPUs.
  const proc = await readProcDriverNvidia(root);
  const smi = await queryNvidiaSmi(run);
  let gpus: VisibleGpu[] = [];
  if (!proc.present && smi.status !== 'ok') {
    problems.push(
      smi.status === 'missing'
        ? 'no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found'
        : `no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi failed: ${smi.message}`,
    );
  } else if (smi.status === 'failed') {
    problems.push(
      `the NVIDIA driver${proc.driverVersion ? ` ${proc.driverVersion}` : ''} is loaded but nvidia-smi failed: ${smi.message}`,
    );
  } else {
    gpus = mergeGpus(smi.status === 'ok' ? smi.gpus : undefined, proc.gpus);
    if (smi.status === 'missing')
      warnings.push('nvidia-smi was not found: GPUs were read from /proc/driver/nvidia, without memory or utilization');
    for (const p of proc.gpus.filter((g) => g.excluded)) warnings.push(`the driver has excluded the GPU at ${p.busId}`);
  }
  const driverVersion = proc.driverVersion ?? gpus.find((g) => g.driverVersion !== undefined)?.driverVersion;
  if (problems.length === 0 && gpus.length === 0) {
    problems.push(`the NVIDIA driver${driverVersion ? ` ${driverVersion}` : ''} is loaded but lists no GPUs`);
  }
  if (problems.length === 0 && driverVersion !== undefined && !versionAtLeast(driverVersion, MIN_DRIVER_VERSION)) {
    problems.push(
      `NVIDIA driver ${driverVersion} is too old for the CUDA 12 build of onnxruntime-node (needs ${MIN_DRIVER_VERSION} or newer)`,
    );
  }
  const visibleSetting = env.CUDA_VISIBLE_DEVICES;
  const visible = applyCudaVisibleDevices(gpus, visibleSetting);
  if (problems.length === 0 && visible.length === 0) {
    problems.push(`CUDA_VISIBLE_DEVICES=${JSON.stringify(visibleSetting)} hides every GPU from CUDA`);
  }
  if (problems.length === 0 && options.deviceId >= visible.length) {
    problems.push(
      `deviceId ${options.deviceId} is configured but CUDA sees ${visible.length === 1 ? '1 GPU (id 0)' : `${visible.length} GPUs (ids 0-${visible.length - 1})`}`,
    );
  }

  // onnxruntime-node's CUDA provider.
  const onnxruntime: CudaProbeDetails['onnxruntime'] = { providers: [], missingLibraries: [] };
  const tensorrt: CudaProbeDetails['tensorrt'] = { enabled: options.tensorrt, available: false };
  let cudaRuntime: CudaProbeDetails['cudaRuntime'];
  const ort = await probeOrt(import.meta.url, 'backend-cuda', inputs, platform, arch, problems);
  const { packageDir, install, name: ortName } = ort;
  if (packageDir !== undefined && install !== undefined) {
    Object.assign(onnxruntime, ortInstallDetails(install));
    const providers = ort.backends ?? [];
    onnxruntime.providers = providers.map((p) => p.name);
    if (install.binaryDir === undefined) {
      problems.push(`${ortName} has no native binary for ${platform}/${arch}`);
    } else if (providers.length > 0 && !onnxruntime.providers.includes('cuda')) {
      problems.push(
        `${ortName} for ${platform}/${arch} is built without the CUDA execution provider (the npm package has it for linux/x64 only)`,
      );
    } else if (providers.length > 0) {
      const libs = await presentFiles(install.binaryDir, ORT_CUDA_LIBRARIES);
      onnxruntime.missingLibraries = libs.missing;
      if (libs.missing.length > 0) {
        problems.push(
          `${ortName} is installed without CUDA libraries (${libs.missing.join(', ')} missing from ${install.binaryDir}): ` +
            `reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci, or run ONNXRUNTIME_NODE_INSTALL=cuda12 node ${join(packageDir, 'script', 'install.js')} ` +
            `where package.json's allowScripts denies onnxruntime-node's install script`,
        );
      } else {
        const search = await findSharedLibraries([...CUDA_RUNTIME_LIBRARIES, TENSORRT_RUNTIME_LIBRARY], {
          root,
          run,
          // The provider library's RUNPATH is $ORIGIN, so libraries copied next to it load too.
          ldLibraryPath: [install.binaryDir, env.LD_LIBRARY_PATH ?? ''].join(':'),
        });
        const missingCuda = search.missing.filter((n) => n !== TENSORRT_RUNTIME_LIBRARY);
        cudaRuntime = { found: search.found, missing: missingCuda };
        if (missingCuda.length > 0) {
          warnings.push(
            `the CUDA provider loads ${missingCuda.join(', ')} (CUDA 12, cuDNN 9), which the loader ${search.conclusive ? 'cannot find' : 'may not find (ldconfig was not available)'}: ` +
              'install them or add their folder to LD_LIBRARY_PATH, or session creation will fall back to CPU',
          );
        }
        if (options.tensorrt) {
          const trtLib = await presentFiles(install.binaryDir, [ORT_TENSORRT_LIBRARY]);
          if (!onnxruntime.providers.includes('tensorrt'))
            tensorrt.reason = `${ortName} is built without the TensorRT execution provider`;
          else if (trtLib.missing.length > 0)
            tensorrt.reason = `${ORT_TENSORRT_LIBRARY} is missing from ${install.binaryDir}`;
          else if (search.found[TENSORRT_RUNTIME_LIBRARY] === undefined)
            tensorrt.reason = `the loader cannot find ${TENSORRT_RUNTIME_LIBRARY} (TensorRT 10)`;
          else tensorrt.available = true;
          if (!tensorrt.available)
            warnings.push(
              `TensorRT is enabled but unavailable (${tensorrt.reason}): sessions use the CUDA provider alone`,
            );
        }
      }
      const keys = options.providerOptionKeys ?? [];
      if (keys.length > 0) {
        const known = await bindingMentions(join(install.binaryDir, 'onnxruntime_binding.node'), keys);
        const ignored = keys.filter((k) => !known.has(k));
        if (ignored.length > 0) {
          warnings.push(
            `${ortName}'s binding passes only deviceId to the CUDA and TensorRT providers: ${ignored.join(', ')} will not take effect`,
          );
        }
      }
    }
  }

  const devices = visible.map((g, id) => toDevice(g, id, driverVersion));
  const details: CudaProbeDetails = {
    ...(driverVersion !== undefined && { driverVersion }),
    nvidiaSmi: smi.status,
    ...(visibleSetting !== undefined && { cudaVisibleDevices: visibleSetting }),
    onnxruntime,
    ...(cudaRuntime !== undefined && { cudaRuntime }),
    tensorrt,
    problems,
    warnings,
  };
  const executionProviders = [...(tensorrt.available ? ['tensorrt'] : []), 'cuda', 'cpu'];
  const [reason] = problems;
  return reason === undefined
    ? { usable: true, devices, executionProviders, details }
    : { usable: false, reason, devices, executionProviders, details };
}
