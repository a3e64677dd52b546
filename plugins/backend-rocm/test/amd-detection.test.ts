import assert from 'node:assert/strict';
import {
  applyVisibleDevices,
  type CommandRunner,
  detectRocm,
  gfxTargetName,
  parseKfdProperties,
  parseRocmSmiJson,
} from '@nucleus/plugin-backend-rocm';
import { machineRoot, removeRoots } from './machine-root.js';

const NODES = 'sys/class/kfd/kfd/topology/nodes';
const GiB = 1024 ** 3;

/** An MI300X node's `properties` (the fields detection reads), with a CPU node beside it that has no SIMDs. */
function mi300xRoot(extra: Record<string, string> = {}): string {
  return machineRoot({
    'dev/kfd': '',
    [`${NODES}/0/properties`]: 'cpu_cores_count 96\nsimd_count 0\ngfx_target_version 0\nvendor_id 0\n',
    [`${NODES}/1/properties`]: [
      'simd_count 1216',
      'simd_per_cu 4',
      'gfx_target_version 90402',
      'vendor_id 4098',
      'device_id 29857',
      'drm_render_minor 128',
      'unique_id 18446744073709551615',
    ].join('\n'),
    [`${NODES}/1/gpu_id`]: '54382\n',
    [`${NODES}/1/mem_banks/0/properties`]: `heap_type 1\nsize_in_bytes ${192 * GiB}\n`,
    [`${NODES}/1/mem_banks/1/properties`]: `heap_type 0\nsize_in_bytes ${512 * GiB}\n`,
    ...extra,
  });
}

// rocm-smi output for one MI300X; some releases print a warning line before the JSON.
const ROCM_SMI = `WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status

{"card0": {"Card Series": "AMD Instinct MI300X", "Card Model": "0x74a1", "Node ID": "1", "GFX Version": "gfx942",
 "VRAM Total Memory (B)": "${192 * GiB}", "VRAM Total Used Memory (B)": "${2 * GiB}"}, "system": {"Driver version": "6.7.0"}}`;

const replay =
  (rocmSmi: Awaited<ReturnType<CommandRunner>>): CommandRunner =>
  async (file) =>
    file === 'rocm-smi' ? rocmSmi : { ok: false, missing: true };

describe('backend-rocm: parsing KFD topology and rocm-smi', () => {
  after(removeRoots);

  it('names LLVM gfx targets from gfx_target_version, minor and stepping in hex', () => {
    assert.equal(gfxTargetName(90402), 'gfx942');
    assert.equal(gfxTargetName(90010), 'gfx90a');
    assert.equal(gfxTargetName(110000), 'gfx1100');
    assert.equal(gfxTargetName(100302), 'gfx1032');
  });

  it('reads a properties file as strings, keeping 64-bit values exact and skipping malformed lines', () => {
    const props = parseKfdProperties('simd_count 1216\nunique_id 18446744073709551615\n  \nnot a pair here\n');
    assert.deepEqual(
      [...props],
      [
        ['simd_count', '1216'],
        ['unique_id', '18446744073709551615'],
      ],
    );
  });

  it('reads rocm-smi JSON after its warnings, old and new key spellings, and ignores what is not a card', () => {
    assert.deepEqual(parseRocmSmiJson(ROCM_SMI), [
      {
        card: 'card0',
        productName: 'AMD Instinct MI300X',
        node: 1,
        gfxTarget: 'gfx942',
        vramTotalBytes: 192 * GiB,
        vramUsedBytes: 2 * GiB,
      },
    ]);
    // A bare PCI id is no product name.
    assert.deepEqual(parseRocmSmiJson('{"card3": {"Card series": "0x74a1"}}'), [{ card: 'card3' }]);
    assert.deepEqual(parseRocmSmiJson('rocm-smi: command failed'), []);
    assert.deepEqual(parseRocmSmiJson('{not json}'), []);
  });

  it('a visible-devices list renumbers GPUs in its order and stops at the first entry it cannot match', () => {
    const gpus = ['a', 'b', 'c'];
    assert.deepEqual(applyVisibleDevices(gpus, undefined), gpus);
    assert.deepEqual(applyVisibleDevices(gpus, '2,0'), ['c', 'a']);
    assert.deepEqual(applyVisibleDevices(gpus, '1,5,0'), ['b']);
    assert.deepEqual(applyVisibleDevices(gpus, '0,0,1'), ['a']);
    assert.deepEqual(applyVisibleDevices(gpus, 'GPU-1'), []);
  });

  it('finds the MI300X on a recorded topology, named by rocm-smi, with its memory and compute units', async () => {
    const probe = await detectRocm({
      root: mi300xRoot(),
      run: replay({ ok: true, stdout: ROCM_SMI }),
      ortPackageDir: null,
      env: {},
    });
    assert.equal(probe.devices.length, 1);
    const gpu = probe.devices[0]!;
    assert.deepEqual(
      [gpu.id, gpu.name, gpu.vendor, gpu.memoryTotalBytes, gpu.memoryFreeBytes],
      [0, 'AMD Instinct MI300X', 'amd', 192 * GiB, 190 * GiB],
    );
    assert.deepEqual(gpu.extra, {
      gfxTarget: 'gfx942',
      kfdNode: 1,
      pciDeviceId: '0x74a1',
      kfdGpuId: 54382,
      computeUnits: 304,
      renderNode: '/dev/dri/renderD128',
      memoryUsedBytes: 2 * GiB,
    });
    // The GPU side is fine; what is left is the missing onnxruntime-node.
    assert.equal(probe.usable, false);
    assert.match(probe.reason ?? '', /onnxruntime-node/);
  });

  it('without rocm-smi the name and memory come from sysfs, or from the topology alone', async () => {
    const drm = 'sys/class/drm/renderD128/device';
    const sysfs = await detectRocm({
      root: mi300xRoot({
        [`${drm}/product_name`]: 'AMD Instinct MI300X OAM\n',
        [`${drm}/mem_info_vram_total`]: `${192 * GiB}\n`,
        [`${drm}/mem_info_vram_used`]: `${GiB}\n`,
      }),
      run: replay({ ok: false, missing: true }),
      ortPackageDir: null,
      env: {},
    });
    assert.deepEqual(
      [sysfs.devices[0]!.name, sysfs.devices[0]!.memoryFreeBytes],
      ['AMD Instinct MI300X OAM', 191 * GiB],
    );
    const bare = await detectRocm({
      root: mi300xRoot(),
      run: replay({ ok: false, missing: true }),
      ortPackageDir: null,
      env: {},
    });
    assert.equal(bare.devices[0]!.name, 'AMD GPU gfx942 (device 0x74a1)');
    assert.equal(bare.devices[0]!.memoryTotalBytes, 192 * GiB);
  });

  it('says why not: no /dev/kfd, every GPU hidden, or a deviceId beyond what HIP sees', async () => {
    const none = await detectRocm({
      root: machineRoot({}),
      run: replay({ ok: false, missing: true }),
      ortPackageDir: null,
      env: {},
    });
    assert.equal(none.reason, 'no AMD GPU driver: /dev/kfd is absent and rocm-smi was not found');
    const hidden = await detectRocm({
      root: mi300xRoot(),
      run: replay({ ok: true, stdout: ROCM_SMI }),
      ortPackageDir: null,
      env: { HIP_VISIBLE_DEVICES: '1' },
    });
    assert.equal(hidden.reason, 'HIP_VISIBLE_DEVICES / ROCR_VISIBLE_DEVICES ("1") hide every GPU');
    const beyond = await detectRocm(
      { root: mi300xRoot(), run: replay({ ok: true, stdout: ROCM_SMI }), ortPackageDir: null, env: {} },
      { deviceId: 1, provider: 'auto' },
    );
    assert.equal(beyond.reason, 'deviceId 1 is configured but HIP sees 1 GPU (id 0)');
  });
});
