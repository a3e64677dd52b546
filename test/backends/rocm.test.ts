import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  detectRocm,
  gfxTargetName,
  parseKfdProperties,
  parseRocmSmiJson,
  readKfdTopology,
  RocmBackend,
  ROCM_SMI_ARGS,
} from '@nucleus/plugin-backend-rocm';
import { FIXTURES, machine, ortInstall } from './helpers.js';

const MI300X = join(FIXTURES, 'machines/mi300x');
const VRAM = 206141652992;

describe('backend-rocm: parsing KFD topology and rocm-smi', () => {
  it('names gfx targets from gfx_target_version', () => {
    assert.equal(gfxTargetName(90402), 'gfx942');
    assert.equal(gfxTargetName(90010), 'gfx90a');
    assert.equal(gfxTargetName(110000), 'gfx1100');
  });

  it('reads a node properties file, keeping 64-bit values as text', () => {
    const props = parseKfdProperties(
      readFileSync(join(MI300X, 'root/sys/class/kfd/kfd/topology/nodes/2/properties'), 'utf8'),
    );
    assert.equal(props.get('simd_count'), '1216');
    assert.equal(props.get('vendor_id'), '4098');
    assert.equal(props.get('unique_id'), '1594183536537186322');
  });

  it('finds the two MI300X GPUs among the topology nodes; the CPU nodes have no SIMDs', async () => {
    const { nodes, gpus } = await readKfdTopology(join(MI300X, 'root'));
    assert.equal(nodes, 4);
    assert.deepEqual(gpus[0], {
      node: 2,
      gpuId: 28851,
      gfxTarget: 'gfx942',
      gfxTargetVersion: 90402,
      vendorId: 4098,
      deviceId: 0x74a1,
      computeUnits: 304,
      drmRenderMinor: 128,
      memoryBytes: VRAM,
    });
    assert.deepEqual(
      gpus.map((g) => g.node),
      [2, 3],
    );
  });

  it('reads rocm-smi JSON, also after the warnings it prints first', () => {
    const json = readFileSync(join(MI300X, 'commands/rocm-smi.stdout'), 'utf8');
    const cards = parseRocmSmiJson(
      `WARNING: AMD GPU device(s) is/are in a low-power state. Check power control/runtime_status\n\n${json}`,
    );
    assert.deepEqual(cards[1], {
      card: 'card1',
      productName: 'AMD Instinct MI300X OAM',
      node: 3,
      gfxTarget: 'gfx942',
      vramTotalBytes: VRAM,
      vramUsedBytes: 103079215104,
    });
    assert.deepEqual(parseRocmSmiJson('ERROR: No AMD GPUs found'), []);
  });
});

describe('backend-rocm: probing recorded machines', () => {
  it('MI300X with the npm onnxruntime-node: GPUs found, unusable because ORT has no AMD provider', async () => {
    const m = machine('mi300x');
    const probe = await detectRocm({ ...m, ...ortInstall('cpu-only'), platform: 'linux', arch: 'x64', env: {} });
    assert.equal(probe.usable, false);
    assert.equal(
      probe.reason,
      'onnxruntime-node 1.30.0 has no ROCm or MIGraphX execution provider (it offers cpu, webgpu, cuda, tensorrt): ' +
        'the npm package is built without AMD GPU support; build onnxruntime-node from source with --use_migraphx',
    );
    assert.deepEqual(m.calls, [{ file: 'rocm-smi', args: ROCM_SMI_ARGS }]);
    assert.deepEqual(probe.devices[0], {
      id: 0,
      name: 'AMD Instinct MI300X OAM',
      vendor: 'amd',
      memoryTotalBytes: VRAM,
      memoryFreeBytes: VRAM - 297508864,
      extra: {
        gfxTarget: 'gfx942',
        kfdNode: 2,
        pciDeviceId: '0x74a1',
        kfdGpuId: 28851,
        computeUnits: 304,
        renderNode: '/dev/dri/renderD128',
        memoryUsedBytes: 297508864,
      },
    });
    assert.equal(probe.devices[1]?.memoryFreeBytes, VRAM - 103079215104);
  });

  it('MI300X with an onnxruntime-node built with MIGraphX: usable', async () => {
    const probe = await detectRocm(
      { ...machine('mi300x'), ...ortInstall('migraphx'), platform: 'linux', arch: 'x64', env: {} },
      { deviceId: 1, provider: 'auto' },
    );
    assert.equal(probe.reason, undefined);
    assert.equal(probe.usable, true);
    assert.equal(probe.details.provider, 'migraphx');
    assert.deepEqual(probe.executionProviders, ['migraphx', 'cpu']);
  });

  it('asking for the ROCm provider of an ORT that only has MIGraphX says so', async () => {
    const probe = await detectRocm(
      { ...machine('mi300x'), ...ortInstall('migraphx'), platform: 'linux', arch: 'x64', env: {} },
      { deviceId: 0, provider: 'rocm' },
    );
    assert.match(
      probe.reason ?? '',
      /^onnxruntime-node 1\.30\.0 has no ROCm execution provider \(it offers cpu, migraphx\)/,
    );
  });

  it('an ORT that lists MIGraphX without its library is unusable', async () => {
    const ort = ortInstall('migraphx');
    const probe = await detectRocm({
      ...machine('mi300x'),
      ortPackageDir: ortInstall('cpu-only').ortPackageDir,
      ortBackends: ort.ortBackends,
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(
      probe.reason,
      `onnxruntime-node 1.30.0 lists the MIGraphX provider but libonnxruntime_providers_migraphx.so is missing from ${ortInstall('cpu-only').binaryDir}`,
    );
  });

  it('without rocm-smi, names and memory come from sysfs', async () => {
    const m = machine('mi300x');
    const probe = await detectRocm({
      root: m.root,
      run: async () => ({ ok: false, missing: true }),
      ...ortInstall('migraphx'),
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(probe.usable, true);
    assert.deepEqual(
      probe.devices.map((d) => [d.name, d.memoryTotalBytes, d.memoryFreeBytes]),
      [
        ['AMD Instinct MI300X OAM', VRAM, VRAM - 297508864],
        ['AMD GPU gfx942 (device 0x74a1)', VRAM, VRAM - 103079215104],
      ],
    );
  });

  it('HIP_VISIBLE_DEVICES renumbers the GPUs and bounds deviceId', async () => {
    const inputs = { ...machine('mi300x'), ...ortInstall('migraphx'), platform: 'linux', arch: 'x64' };
    const probe = await detectRocm({ ...inputs, env: { HIP_VISIBLE_DEVICES: '1' } }, { deviceId: 1, provider: 'auto' });
    assert.deepEqual(
      probe.devices.map((d) => [d.id, d.extra?.kfdNode]),
      [[0, 3]],
    );
    assert.equal(probe.reason, 'deviceId 1 is configured but HIP sees 1 GPU (id 0)');
  });

  it('a machine with nothing: no driver', async () => {
    const probe = await detectRocm({
      ...machine('nothing'),
      ...ortInstall('cpu-only'),
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(probe.reason, 'no AMD GPU driver: /dev/kfd is absent and rocm-smi was not found');
    assert.equal(probe.details.problems.length, 2);
  });
});

describe('backend-rocm: session options', () => {
  it('asks for the provider the probe found, on the configured device, then CPU', async () => {
    const backend = new RocmBackend(
      { deviceId: 1, fp16: true },
      { ...machine('mi300x'), ...ortInstall('migraphx'), platform: 'linux', arch: 'x64', env: {} },
    );
    await backend.probe();
    assert.deepEqual(backend.sessionOptions().executionProviders, [
      { name: 'migraphx', deviceId: 1, migraphx_fp16_enable: true },
      'cpu',
    ]);
    assert.deepEqual(backend.sessionOptions({ provider: 'rocm', deviceId: 0 }).executionProviders, [
      { name: 'rocm', deviceId: 0 },
      'cpu',
    ]);
  });
});

describe('backend-rocm: this machine', () => {
  it('reports unusable with the reason, never throwing', async function () {
    if (existsSync('/dev/kfd')) this.skip();
    const probe = await new RocmBackend().probe();
    assert.equal(probe.usable, false);
    assert.equal(probe.reason, 'no AMD GPU driver: /dev/kfd is absent and rocm-smi was not found');
    assert.match(probe.details.problems[1] ?? '', /has no ROCm or MIGraphX execution provider/);
  });
});
