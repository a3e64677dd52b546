import { describeFailure, exists, list, readText, type CommandRunner } from '@nucleus/sdk/backend-kit';

/** The fields Nucleus asks nvidia-smi for, in column order. */
export const NVIDIA_SMI_FIELDS = [
  'index',
  'name',
  'uuid',
  'memory.total',
  'memory.used',
  'memory.free',
  'utilization.gpu',
  'driver_version',
  'compute_cap',
] as const;

/** The nvidia-smi arguments behind {@link parseNvidiaSmiCsv}. */
export function nvidiaSmiArgs(fields: readonly string[] = NVIDIA_SMI_FIELDS): string[] {
  return [`--query-gpu=${fields.join(',')}`, '--format=csv,noheader,nounits'];
}

/** One GPU as nvidia-smi reports it; absent fields were `[N/A]` or `[Not Supported]`. */
export interface NvidiaSmiGpu {
  index: number;
  name: string;
  uuid: string;
  memoryTotalMiB?: number;
  memoryUsedMiB?: number;
  memoryFreeMiB?: number;
  utilizationPercent?: number;
  driverVersion?: string;
  /** `major.minor`, e.g. `9.0` for Hopper. */
  computeCapability?: string;
}

function field(value: string | undefined): string | undefined {
  const v = value?.trim();
  // nvidia-smi writes [N/A] or [Not Supported] (e.g. utilization on a MIG-enabled GPU).
  return v === undefined || v === '' || /^\[.*\]$/.test(v) || v === 'N/A' ? undefined : v;
}

function num(value: string | undefined): number | undefined {
  const v = field(value);
  if (v === undefined) return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Parses `nvidia-smi --query-gpu=<NVIDIA_SMI_FIELDS> --format=csv,noheader,nounits`; lines it cannot read are skipped.
 */
export function parseNvidiaSmiCsv(text: string, fields: readonly string[] = NVIDIA_SMI_FIELDS): NvidiaSmiGpu[] {
  const gpus: NvidiaSmiGpu[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const cells = line.split(',');
    if (cells.length !== fields.length) continue;
    const at = (name: string): string | undefined => cells[fields.indexOf(name)];
    const index = num(at('index'));
    const name = field(at('name'));
    if (index === undefined || name === undefined) continue;
    const gpu: NvidiaSmiGpu = { index, name, uuid: field(at('uuid')) ?? '' };
    const total = num(at('memory.total'));
    const used = num(at('memory.used'));
    const free = num(at('memory.free'));
    const util = num(at('utilization.gpu'));
    const driver = field(at('driver_version'));
    const cc = field(at('compute_cap'));
    if (total !== undefined) gpu.memoryTotalMiB = total;
    if (used !== undefined) gpu.memoryUsedMiB = used;
    if (free !== undefined) gpu.memoryFreeMiB = free;
    if (util !== undefined) gpu.utilizationPercent = util;
    if (driver !== undefined) gpu.driverVersion = driver;
    if (cc !== undefined) gpu.computeCapability = cc;
    gpus.push(gpu);
  }
  return gpus;
}

/** The kernel module version from `/proc/driver/nvidia/version` (proprietary or open module). */
export function parseNvidiaDriverVersion(text: string): string | undefined {
  const line = text.split('\n').find((l) => l.startsWith('NVRM version:'));
  return line?.match(/Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)/)?.[1];
}

/** One GPU as `/proc/driver/nvidia/gpus/<bus id>/information` describes it. */
export interface NvidiaProcGpu {
  busId: string;
  model?: string;
  uuid?: string;
  deviceMinor?: number;
  /** True when the driver has excluded the GPU (e.g. after an uncorrectable error). */
  excluded: boolean;
}

/** Parses a `/proc/driver/nvidia/gpus/<bus id>/information` file. */
export function parseNvidiaGpuInformation(busId: string, text: string): NvidiaProcGpu {
  const values = new Map<string, string>();
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) values.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const minor = values.get('Device Minor');
  const gpu: NvidiaProcGpu = {
    busId: values.get('Bus Location') ?? busId,
    excluded: values.get('GPU Excluded') === 'Yes',
  };
  const model = values.get('Model');
  const uuid = values.get('GPU UUID');
  if (model) gpu.model = model;
  if (uuid) gpu.uuid = uuid;
  if (minor !== undefined && /^\d+$/.test(minor)) gpu.deviceMinor = Number(minor);
  return gpu;
}

/** What `/proc/driver/nvidia` says about the loaded kernel driver. */
export interface NvidiaProcDriver {
  present: boolean;
  driverVersion?: string;
  gpus: NvidiaProcGpu[];
}

/** Reads `/proc/driver/nvidia` under `root`. */
export async function readProcDriverNvidia(root: string): Promise<NvidiaProcDriver> {
  if (!(await exists(root, 'proc/driver/nvidia'))) return { present: false, gpus: [] };
  const versionText = await readText(root, 'proc/driver/nvidia/version');
  const driverVersion = versionText === undefined ? undefined : parseNvidiaDriverVersion(versionText);
  const gpus: NvidiaProcGpu[] = [];
  for (const busId of await list(root, 'proc/driver/nvidia/gpus')) {
    const info = await readText(root, `proc/driver/nvidia/gpus/${busId}/information`);
    if (info !== undefined) gpus.push(parseNvidiaGpuInformation(busId, info));
  }
  return { present: true, ...(driverVersion !== undefined && { driverVersion }), gpus };
}

/** What nvidia-smi answered: GPUs, a failure in its own words, or that it is not installed. */
export type NvidiaSmiResult =
  | { status: 'ok'; gpus: NvidiaSmiGpu[] }
  | { status: 'missing' }
  | { status: 'failed'; message: string };

/** Runs nvidia-smi; drivers older than R510 do not know `compute_cap`, so it retries without that column. */
export async function queryNvidiaSmi(run: CommandRunner): Promise<NvidiaSmiResult> {
  let fields: readonly string[] = NVIDIA_SMI_FIELDS;
  let result = await run('nvidia-smi', nvidiaSmiArgs(fields));
  if (!result.ok && !result.missing && /compute_cap/.test(result.output) && /not a valid field/i.test(result.output)) {
    fields = NVIDIA_SMI_FIELDS.filter((f) => f !== 'compute_cap');
    result = await run('nvidia-smi', nvidiaSmiArgs(fields));
  }
  if (result.ok) return { status: 'ok', gpus: parseNvidiaSmiCsv(result.stdout, fields) };
  if (result.missing) return { status: 'missing' };
  return { status: 'failed', message: describeFailure(result) };
}
