import type { BackendProbe, DeviceInfo } from '@nucleus/sdk';
import { readDrmDevice, readKfdTopology, queryRocmSmi, AMD_VENDOR_ID, type KfdGpu, type RocmSmiCard } from './amd.js';
import type { RocmProvider } from './config.js';
import {
  exists,
  execFileRunner,
  ortInstallDetails,
  presentFiles,
  probeOrt,
  type MachineInputs,
} from '@nucleus/sdk/backend-kit';

/** What ROCm detection reads (`env`: HIP_VISIBLE_DEVICES, ROCR_VISIBLE_DEVICES). */
export type RocmProbeInputs = MachineInputs;

/** What the backend's config asks detection to check. */
export interface RocmProbeOptions {
  deviceId: number;
  provider: RocmProvider;
}

// A type alias rather than an interface so it fits BackendProbe's Record-typed `details`.
/** The `details` of a ROCm probe, as `/status` shows them. */
export type RocmProbeDetails = {
  kfd: boolean;
  rocmSmi: 'ok' | 'missing' | 'failed';
  /** The provider sessions would use, when ORT offers one. */
  provider?: 'migraphx' | 'rocm';
  onnxruntime: { version?: string; packageDir?: string; binaryDir?: string; providers: string[] };
  problems: string[];
  warnings: string[];
};

/** A ROCm probe with typed details. */
export interface RocmProbe extends BackendProbe {
  details: RocmProbeDetails;
}

/** The provider library ORT loads for each AMD execution provider. */
export const ORT_AMD_LIBRARIES = {
  migraphx: 'libonnxruntime_providers_migraphx.so',
  rocm: 'libonnxruntime_providers_rocm.so',
} as const;

const PROVIDER_LABEL = { migraphx: 'MIGraphX', rocm: 'ROCm' } as const;

/**
 * The GPUs a `*_VISIBLE_DEVICES` index list leaves, renumbered in list order; stops at the first entry it cannot
 * match.
 */
export function applyVisibleDevices<G>(gpus: readonly G[], value: string | undefined): G[] {
  if (value === undefined) return [...gpus];
  const chosen: G[] = [];
  for (const raw of value.split(',')) {
    const token = raw.trim();
    const gpu = /^\d+$/.test(token) ? gpus[Number(token)] : undefined;
    if (gpu === undefined || chosen.includes(gpu)) break;
    chosen.push(gpu);
  }
  return chosen;
}

async function toDevice(root: string, gpu: KfdGpu, id: number, cards: readonly RocmSmiCard[]): Promise<DeviceInfo> {
  // Older rocm-smi prints no Node ID; its cards are then in KFD order.
  const card =
    cards.find((c) => c.node === gpu.node) ?? (cards.every((c) => c.node === undefined) ? cards[id] : undefined);
  const drm = gpu.drmRenderMinor === undefined ? {} : await readDrmDevice(root, gpu.drmRenderMinor);
  const hexId = `0x${gpu.deviceId.toString(16).padStart(4, '0')}`;
  const device: DeviceInfo = {
    id,
    name: card?.productName ?? drm.productName ?? `AMD GPU ${gpu.gfxTarget} (device ${hexId})`,
    vendor: 'amd',
  };
  const total = drm.vramTotalBytes ?? card?.vramTotalBytes ?? gpu.memoryBytes;
  const used = drm.vramUsedBytes ?? card?.vramUsedBytes;
  if (total !== undefined) device.memoryTotalBytes = total;
  if (total !== undefined && used !== undefined) device.memoryFreeBytes = Math.max(0, total - used);
  device.extra = {
    gfxTarget: gpu.gfxTarget,
    kfdNode: gpu.node,
    pciDeviceId: hexId,
    ...(gpu.gpuId !== undefined && { kfdGpuId: gpu.gpuId }),
    ...(gpu.computeUnits !== undefined && { computeUnits: gpu.computeUnits }),
    ...(gpu.drmRenderMinor !== undefined && { renderNode: `/dev/dri/renderD${gpu.drmRenderMinor}` }),
    ...(used !== undefined && { memoryUsedBytes: used }),
  };
  return device;
}

/** Looks for AMD GPUs and an onnxruntime-node with a ROCm or MIGraphX provider; never throws, says why not instead. */
export async function detectRocm(
  inputs: RocmProbeInputs = {},
  options: RocmProbeOptions = { deviceId: 0, provider: 'auto' },
): Promise<RocmProbe> {
  const root = inputs.root ?? '/';
  const run = inputs.run ?? execFileRunner();
  const env = inputs.env ?? process.env;
  const platform = inputs.platform ?? process.platform;
  const arch = inputs.arch ?? process.arch;
  const problems: string[] = [];
  const warnings: string[] = [];

  // The amdgpu driver's compute interface and its GPUs.
  const kfd = await exists(root, 'dev/kfd');
  const smi = await queryRocmSmi(run);
  let gpus: KfdGpu[] = [];
  if (!kfd) {
    problems.push(
      smi.status === 'missing'
        ? 'no AMD GPU driver: /dev/kfd is absent and rocm-smi was not found'
        : 'no AMD GPU driver: /dev/kfd is absent (the amdgpu driver is not loaded, or this container was started without --device=/dev/kfd)',
    );
  } else {
    const topology = await readKfdTopology(root);
    gpus = topology.gpus.filter((g) => g.vendorId === AMD_VENDOR_ID);
    if (topology.nodes === 0)
      problems.push('/dev/kfd is present but /sys/class/kfd/kfd/topology lists no nodes: is /sys mounted?');
    else if (gpus.length === 0) problems.push('the amdgpu driver is loaded but its KFD topology lists no AMD GPU');
    if (smi.status === 'failed') warnings.push(`rocm-smi failed: ${smi.message}; names and memory come from sysfs`);
  }
  const cards = smi.status === 'ok' ? smi.cards : [];
  const all = await Promise.all(gpus.map((g, i) => toDevice(root, g, i, cards)));
  // ROCR_VISIBLE_DEVICES filters first, then HIP_VISIBLE_DEVICES indexes what is left.
  const visibleSetting = env.HIP_VISIBLE_DEVICES ?? env.ROCR_VISIBLE_DEVICES;
  const visible = applyVisibleDevices(applyVisibleDevices(all, env.ROCR_VISIBLE_DEVICES), env.HIP_VISIBLE_DEVICES);
  const devices = visible.map((d, id) => ({ ...d, id }));
  if (problems.length === 0 && devices.length === 0) {
    problems.push(`HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES (${JSON.stringify(visibleSetting)}) hide every GPU`);
  }
  if (problems.length === 0 && options.deviceId >= devices.length) {
    problems.push(
      `deviceId ${options.deviceId} is configured but HIP sees ${devices.length === 1 ? '1 GPU (id 0)' : `${devices.length} GPUs (ids 0-${devices.length - 1})`}`,
    );
  }

  // onnxruntime-node's AMD providers.
  const onnxruntime: RocmProbeDetails['onnxruntime'] = { providers: [] };
  let provider: 'migraphx' | 'rocm' | undefined;
  const ort = await probeOrt(import.meta.url, 'backend-rocm', inputs, platform, arch, problems);
  const { install, name: ortName, backends: offered } = ort;
  if (install !== undefined) {
    Object.assign(onnxruntime, ortInstallDetails(install));
    if (offered !== undefined) {
      onnxruntime.providers = offered.map((p) => p.name);
      const wanted: Array<'migraphx' | 'rocm'> =
        options.provider === 'auto' ? ['migraphx', 'rocm'] : [options.provider];
      const candidate = wanted.find((p) => onnxruntime.providers.includes(p));
      if (candidate === undefined) {
        const what = options.provider === 'auto' ? 'ROCm or MIGraphX' : PROVIDER_LABEL[options.provider];
        problems.push(
          `${ortName} has no ${what} execution provider (it offers ${onnxruntime.providers.join(', ') || 'none'}): ` +
            'the npm package is built without AMD GPU support; build onnxruntime-node from source with --use_migraphx',
        );
      } else if (install.binaryDir === undefined) {
        problems.push(`${ortName} has no native binary for ${platform}/${arch}`);
      } else {
        const bundled = offered.find((p) => p.name === candidate)?.bundled ?? false;
        const lib = ORT_AMD_LIBRARIES[candidate];
        // A bundled provider is linked into the main library; otherwise its own library must sit next to the binding.
        if (!bundled && (await presentFiles(install.binaryDir, [lib])).missing.length > 0) {
          problems.push(
            `${ortName} lists the ${PROVIDER_LABEL[candidate]} provider but ${lib} is missing from ${install.binaryDir}`,
          );
        } else {
          provider = candidate;
        }
      }
    }
  }

  const details: RocmProbeDetails = {
    kfd,
    rocmSmi: smi.status,
    ...(provider !== undefined && { provider }),
    onnxruntime,
    problems,
    warnings,
  };
  const executionProviders = [provider ?? (options.provider === 'rocm' ? 'rocm' : 'migraphx'), 'cpu'];
  const [reason] = problems;
  return reason === undefined
    ? { usable: true, devices, executionProviders, details }
    : { usable: false, reason, devices, executionProviders, details };
}
