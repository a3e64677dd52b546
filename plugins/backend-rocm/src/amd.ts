import { describeFailure, list, readText, type CommandRunner } from '@nucleus/sdk/backend-kit';

/** AMD's PCI vendor id as KFD reports it (0x1002). */
export const AMD_VENDOR_ID = 0x1002;

/** Parses a KFD `properties` file: one `name value` pair a line. Values stay strings; some are 64-bit. */
export function parseKfdProperties(text: string): Map<string, string> {
  const props = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = line.trim().match(/^(\S+)\s+(\S+)$/);
    if (m?.[1] !== undefined && m[2] !== undefined) props.set(m[1], m[2]);
  }
  return props;
}

/**
 * The LLVM target name for a KFD `gfx_target_version` (decimal major·10000 + minor·100 + stepping): 90402 → gfx942,
 * 90010 → gfx90a.
 */
export function gfxTargetName(version: number): string {
  const major = Math.floor(version / 10000);
  const minor = Math.floor(version / 100) % 100;
  const stepping = version % 100;
  return `gfx${major}${minor.toString(16)}${stepping.toString(16)}`;
}

/** One GPU node of the KFD topology. */
export interface KfdGpu {
  /** The topology node number (CPU nodes included in the numbering). */
  node: number;
  /** KFD's stable GPU id (`gpu_id`), what rocm-smi calls GUID. */
  gpuId?: number;
  gfxTarget: string;
  gfxTargetVersion: number;
  vendorId: number;
  deviceId: number;
  computeUnits?: number;
  /** `/dev/dri/renderD<minor>`, which links the node to its DRM device. */
  drmRenderMinor?: number;
  /** Local memory from the node's memory banks. */
  memoryBytes?: number;
}

function int(props: Map<string, string>, key: string): number | undefined {
  const v = props.get(key);
  if (v === undefined || !/^\d+$/.test(v)) return undefined;
  return Number(v);
}

/** Reads `/sys/class/kfd/kfd/topology/nodes/*` under `root`; a node with SIMDs is a GPU, CPU nodes have none. */
export async function readKfdTopology(root: string): Promise<{ nodes: number; gpus: KfdGpu[] }> {
  const base = 'sys/class/kfd/kfd/topology/nodes';
  const names = (await list(root, base)).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(a) - Number(b));
  const gpus: KfdGpu[] = [];
  for (const name of names) {
    const text = await readText(root, `${base}/${name}/properties`);
    if (text === undefined) continue;
    const props = parseKfdProperties(text);
    const simdCount = int(props, 'simd_count') ?? 0;
    const gfxTargetVersion = int(props, 'gfx_target_version') ?? 0;
    if (simdCount === 0 || gfxTargetVersion === 0) continue;
    const gpu: KfdGpu = {
      node: Number(name),
      gfxTarget: gfxTargetName(gfxTargetVersion),
      gfxTargetVersion,
      vendorId: int(props, 'vendor_id') ?? 0,
      deviceId: int(props, 'device_id') ?? 0,
    };
    const gpuId = (await readText(root, `${base}/${name}/gpu_id`))?.trim();
    if (gpuId !== undefined && /^\d+$/.test(gpuId)) gpu.gpuId = Number(gpuId);
    const simdPerCu = int(props, 'simd_per_cu');
    if (simdPerCu) gpu.computeUnits = simdCount / simdPerCu;
    const minor = int(props, 'drm_render_minor');
    if (minor !== undefined) gpu.drmRenderMinor = minor;
    let memory = 0;
    for (const bank of await list(root, `${base}/${name}/mem_banks`)) {
      const bankProps = parseKfdProperties(
        (await readText(root, `${base}/${name}/mem_banks/${bank}/properties`)) ?? '',
      );
      // Heap types 1 and 2 are the GPU's own framebuffer (public and private); 0 is system memory.
      const heap = int(bankProps, 'heap_type');
      if (heap === 1 || heap === 2) memory += int(bankProps, 'size_in_bytes') ?? 0;
    }
    if (memory > 0) gpu.memoryBytes = memory;
    gpus.push(gpu);
  }
  return { nodes: names.length, gpus };
}

/** What the amdgpu DRM device of a render node exposes in sysfs. */
export interface DrmDeviceInfo {
  productName?: string;
  vramTotalBytes?: number;
  vramUsedBytes?: number;
}

/** Reads `/sys/class/drm/renderD<minor>/device` under `root`. */
export async function readDrmDevice(root: string, renderMinor: number): Promise<DrmDeviceInfo> {
  const dir = `sys/class/drm/renderD${renderMinor}/device`;
  const info: DrmDeviceInfo = {};
  const name = (await readText(root, `${dir}/product_name`))?.trim();
  if (name) info.productName = name;
  const total = (await readText(root, `${dir}/mem_info_vram_total`))?.trim();
  const used = (await readText(root, `${dir}/mem_info_vram_used`))?.trim();
  if (total !== undefined && /^\d+$/.test(total)) info.vramTotalBytes = Number(total);
  if (used !== undefined && /^\d+$/.test(used)) info.vramUsedBytes = Number(used);
  return info;
}

/** One card as `rocm-smi --showproductname --showmeminfo vram --json` reports it. */
export interface RocmSmiCard {
  card: string;
  productName?: string;
  /** The KFD topology node (`Node ID`). */
  node?: number;
  gfxTarget?: string;
  vramTotalBytes?: number;
  vramUsedBytes?: number;
}

/** The rocm-smi arguments behind {@link parseRocmSmiJson}. */
export const ROCM_SMI_ARGS = ['--showproductname', '--showmeminfo', 'vram', '--json'] as const;

/** Parses rocm-smi's JSON; it can print warnings before the JSON, so only the outermost braces are read. */
export function parseRocmSmiJson(text: string): RocmSmiCard[] {
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end < start) return [];
  let data: unknown;
  try {
    data = JSON.parse(text.slice(start, end + 1));
  } catch {
    return [];
  }
  if (typeof data !== 'object' || data === null) return [];
  const cards: RocmSmiCard[] = [];
  for (const [card, value] of Object.entries(data as Record<string, unknown>)) {
    if (!/^card\d+$/.test(card) || typeof value !== 'object' || value === null) continue;
    // Key spelling has changed between ROCm releases ("Card Series" / "Card series").
    const fields = new Map(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k.toLowerCase(), String(v)]),
    );
    const entry: RocmSmiCard = { card };
    const name = fields.get('card series') ?? fields.get('card model');
    if (name !== undefined && name !== '' && !/^0x[0-9a-f]+$/i.test(name)) entry.productName = name;
    const node = fields.get('node id');
    if (node !== undefined && /^\d+$/.test(node)) entry.node = Number(node);
    const gfx = fields.get('gfx version');
    if (gfx !== undefined && /^gfx[0-9a-f]+$/i.test(gfx)) entry.gfxTarget = gfx;
    const total = fields.get('vram total memory (b)');
    const used = fields.get('vram total used memory (b)');
    if (total !== undefined && /^\d+$/.test(total)) entry.vramTotalBytes = Number(total);
    if (used !== undefined && /^\d+$/.test(used)) entry.vramUsedBytes = Number(used);
    cards.push(entry);
  }
  return cards;
}

/** What rocm-smi answered: cards, a failure in its own words, or that it is not installed. */
export type RocmSmiResult =
  | { status: 'ok'; cards: RocmSmiCard[] }
  | { status: 'missing' }
  | { status: 'failed'; message: string };

/** Runs rocm-smi for product names and VRAM. */
export async function queryRocmSmi(run: CommandRunner): Promise<RocmSmiResult> {
  const result = await run('rocm-smi', ROCM_SMI_ARGS);
  if (result.ok) return { status: 'ok', cards: parseRocmSmiJson(result.stdout) };
  if (result.missing) return { status: 'missing' };
  return { status: 'failed', message: describeFailure(result) };
}
