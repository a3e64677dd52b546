import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  applyCudaVisibleDevices,
  CudaBackend,
  detectCuda,
  NVIDIA_SMI_FIELDS,
  parseNvidiaDriverVersion,
  parseNvidiaGpuInformation,
  parseNvidiaSmiCsv,
} from '@nucleus/plugin-backend-cuda';
import { FIXTURES, machine, ortInstall } from './helpers.js';

const MiB = 1024 * 1024;
const H100 = join(FIXTURES, 'machines/h100x2');

describe('backend-cuda: parsing what the driver and nvidia-smi say', () => {
  it('reads both GPUs of the 2×H100 nvidia-smi CSV, memory in MiB', () => {
    const gpus = parseNvidiaSmiCsv(readFileSync(join(H100, 'commands/nvidia-smi.stdout'), 'utf8'));
    assert.deepEqual(gpus[1], {
      index: 1,
      name: 'NVIDIA H100 80GB HBM3',
      uuid: 'GPU-a3d91b27-64f0-e5c8-1b7a-9c2e4d6f8a10',
      memoryTotalMiB: 81559,
      memoryUsedMiB: 40213,
      memoryFreeMiB: 40795,
      utilizationPercent: 87,
      driverVersion: '550.90.07',
      computeCapability: '9.0',
    });
    assert.equal(gpus.length, 2);
  });

  it('leaves out fields nvidia-smi reports as [N/A] or [Not Supported], and skips lines it cannot read', () => {
    const csv =
      '0, NVIDIA A100-SXM4-80GB, GPU-1, 81920, [N/A], [N/A], [Not Supported], 535.104.05, 8.0\nNo devices were found\n';
    const [gpu, ...rest] = parseNvidiaSmiCsv(csv);
    assert.deepEqual(gpu, {
      index: 0,
      name: 'NVIDIA A100-SXM4-80GB',
      uuid: 'GPU-1',
      memoryTotalMiB: 81920,
      driverVersion: '535.104.05',
      computeCapability: '8.0',
    });
    assert.equal(rest.length, 0);
  });

  it('reads the driver version of the proprietary and the open kernel module', () => {
    assert.equal(
      parseNvidiaDriverVersion(readFileSync(join(H100, 'root/proc/driver/nvidia/version'), 'utf8')),
      '550.90.07',
    );
    const open = readFileSync(join(FIXTURES, 'machines/a10g-driver-only/root/proc/driver/nvidia/version'), 'utf8');
    assert.equal(parseNvidiaDriverVersion(open), '535.183.01');
  });

  it('reads a GPU information file', () => {
    const text = readFileSync(join(H100, 'root/proc/driver/nvidia/gpus/0000:2a:00.0/information'), 'utf8');
    assert.deepEqual(parseNvidiaGpuInformation('0000:2a:00.0', text), {
      busId: '0000:2a:00.0',
      model: 'NVIDIA H100 80GB HBM3',
      uuid: 'GPU-a3d91b27-64f0-e5c8-1b7a-9c2e4d6f8a10',
      deviceMinor: 1,
      excluded: false,
    });
  });

  it('numbers GPUs the way CUDA_VISIBLE_DEVICES does: by index or UUID prefix, stopping at the first unknown entry', () => {
    const gpus = [
      { index: 0, uuid: 'GPU-5f0c2a4e' },
      { index: 1, uuid: 'GPU-a3d91b27' },
    ];
    assert.deepEqual(applyCudaVisibleDevices(gpus, '1,0'), [gpus[1], gpus[0]]);
    assert.deepEqual(applyCudaVisibleDevices(gpus, 'GPU-a3d9'), [gpus[1]]);
    assert.deepEqual(applyCudaVisibleDevices(gpus, '0,7,1'), [gpus[0]]);
    assert.deepEqual(applyCudaVisibleDevices(gpus, ''), []);
    assert.deepEqual(applyCudaVisibleDevices(gpus, undefined), gpus);
  });
});

describe('backend-cuda: probing recorded machines', () => {
  it('2×H100 with the CUDA libraries installed: usable, each GPU with its memory', async () => {
    const m = machine('h100x2');
    const probe = await detectCuda({ ...m, ...ortInstall('cuda12'), platform: 'linux', arch: 'x64', env: {} });
    assert.equal(probe.reason, undefined);
    assert.equal(probe.usable, true);
    assert.deepEqual(probe.executionProviders, ['cuda', 'cpu']);
    assert.equal(probe.devices.length, 2);
    const [first, second] = probe.devices;
    assert.deepEqual(first, {
      id: 0,
      name: 'NVIDIA H100 80GB HBM3',
      vendor: 'nvidia',
      memoryTotalBytes: 81559 * MiB,
      memoryFreeBytes: 81008 * MiB,
      utilizationPercent: 0,
      driverVersion: '550.90.07',
      extra: {
        nvidiaSmiIndex: 0,
        uuid: 'GPU-5f0c2a4e-8b1d-3c7e-9a40-1e2d3c4b5a69',
        computeCapability: '9.0',
        busId: '0000:18:00.0',
        memoryUsedBytes: 0,
      },
    });
    assert.equal(second?.memoryFreeBytes, 40795 * MiB);
    assert.equal(second?.utilizationPercent, 87);
    assert.equal(probe.details.driverVersion, '550.90.07');
    assert.deepEqual(probe.details.cudaRuntime?.missing, []);
    assert.equal(probe.details.cudaRuntime?.found['libcudnn.so.9'], '/usr/lib/x86_64-linux-gnu/libcudnn.so.9');
    assert.deepEqual(probe.details.warnings, []);
    assert.deepEqual(m.calls[0], {
      file: 'nvidia-smi',
      args: [`--query-gpu=${NVIDIA_SMI_FIELDS.join(',')}`, '--format=csv,noheader,nounits'],
    });
  });

  it('puts TensorRT first when it is enabled and its libraries are there', async () => {
    const probe = await detectCuda(
      { ...machine('h100x2'), ...ortInstall('cuda12'), platform: 'linux', arch: 'x64', env: {} },
      { deviceId: 1, tensorrt: true },
    );
    assert.equal(probe.usable, true);
    assert.deepEqual(probe.details.tensorrt, { enabled: true, available: true });
    assert.deepEqual(probe.executionProviders, ['tensorrt', 'cuda', 'cpu']);
  });

  it('a driver but an onnxruntime-node without its CUDA libraries: unusable, and says how to install them', async () => {
    const ort = ortInstall('cpu-only');
    const probe = await detectCuda({ ...machine('a10g-driver-only'), ...ort, platform: 'linux', arch: 'x64', env: {} });
    assert.equal(probe.usable, false);
    assert.equal(
      probe.reason,
      `onnxruntime-node 1.30.0 is installed without CUDA libraries (libonnxruntime_providers_cuda.so, libonnxruntime_providers_shared.so missing from ${ort.binaryDir}): ` +
        `reinstall with ONNXRUNTIME_NODE_INSTALL=cuda12 npm ci, or run ONNXRUNTIME_NODE_INSTALL=cuda12 node ${join(ort.ortPackageDir, 'script/install.js')} ` +
        "where package.json's allowScripts denies onnxruntime-node's install script",
    );
    // The GPU itself was found: /status can still show it.
    assert.equal(probe.devices[0]?.name, 'NVIDIA A10G');
    assert.equal(probe.devices[0]?.memoryTotalBytes, 23028 * MiB);
    assert.equal(probe.details.driverVersion, '535.183.01');
  });

  it('a machine with nothing: no driver, and both problems listed', async () => {
    const probe = await detectCuda({
      ...machine('nothing'),
      ...ortInstall('cpu-only'),
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(probe.usable, false);
    assert.equal(probe.reason, 'no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found');
    assert.deepEqual(probe.devices, []);
    assert.equal(probe.details.problems.length, 2);
    assert.match(probe.details.problems[1] ?? '', /installed without CUDA libraries/);
  });

  it('nvidia-smi in the image but no GPU given to the container: quotes nvidia-smi', async () => {
    const probe = await detectCuda({
      ...machine('nvidia-smi-no-driver'),
      ...ortInstall('cuda12'),
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(
      probe.reason,
      "no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi failed: NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. " +
        'Make sure that the latest NVIDIA driver is installed and running. (exited with code 9)',
    );
  });

  it('without nvidia-smi, reads the GPUs from /proc/driver/nvidia (no memory figures) and warns', async () => {
    const m = machine('h100x2');
    const run: typeof m.run = async (file, args) =>
      file === 'nvidia-smi' ? { ok: false, missing: true } : m.run(file, args);
    const probe = await detectCuda({
      root: m.root,
      run,
      ...ortInstall('cuda12'),
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(probe.usable, true);
    assert.deepEqual(
      probe.devices.map((d) => [d.id, d.name, d.extra?.busId, d.memoryTotalBytes]),
      [
        [0, 'NVIDIA H100 80GB HBM3', '0000:18:00.0', undefined],
        [1, 'NVIDIA H100 80GB HBM3', '0000:2a:00.0', undefined],
      ],
    );
    assert.match(probe.details.warnings[0] ?? '', /nvidia-smi was not found/);
  });

  it('applies CUDA_VISIBLE_DEVICES and checks deviceId against what CUDA will see', async () => {
    const inputs = { ...machine('h100x2'), ...ortInstall('cuda12'), platform: 'linux', arch: 'x64' };
    const one = await detectCuda({ ...inputs, env: { CUDA_VISIBLE_DEVICES: '1' } });
    assert.deepEqual(
      one.devices.map((d) => [d.id, d.extra?.nvidiaSmiIndex]),
      [[0, 1]],
    );
    const outOfRange = await detectCuda(
      { ...inputs, env: { CUDA_VISIBLE_DEVICES: '1' } },
      { deviceId: 1, tensorrt: false },
    );
    assert.equal(outOfRange.reason, 'deviceId 1 is configured but CUDA sees 1 GPU (id 0)');
    const none = await detectCuda({ ...inputs, env: { CUDA_VISIBLE_DEVICES: '' } });
    assert.equal(none.reason, 'CUDA_VISIBLE_DEVICES="" hides every GPU from CUDA');
  });

  it('says when onnxruntime-node has no CUDA provider for this platform, or is not installed', async () => {
    const noCuda = await detectCuda({
      ...machine('nothing'),
      ortPackageDir: ortInstall('cpu-only').ortPackageDir,
      ortBackends: () => [
        { name: 'cpu', bundled: true },
        { name: 'coreml', bundled: true },
      ],
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(
      noCuda.details.problems[1],
      'onnxruntime-node 1.30.0 for linux/x64 is built without the CUDA execution provider (the npm package has it for linux/x64 only)',
    );
    const arm = await detectCuda({
      ...machine('nothing'),
      ...ortInstall('cpu-only'),
      platform: 'linux',
      arch: 'arm64',
      env: {},
    });
    assert.equal(arm.details.problems[1], 'onnxruntime-node 1.30.0 has no native binary for linux/arm64');
    const absent = await detectCuda({
      ...machine('nothing'),
      ortPackageDir: null,
      platform: 'linux',
      arch: 'x64',
      env: {},
    });
    assert.equal(
      absent.details.problems[1],
      'onnxruntime-node is not installed where the backend-cuda plugin can load it: run npm install',
    );
  });

  it('warns that this binding passes only deviceId when provider options are tuned', async () => {
    const backend = new CudaBackend(
      {
        cudnnConvAlgoSearch: 'HEURISTIC',
        fp16: true,
        tensorrt: { enabled: true, engineCache: true, engineCachePath: '/var/cache/trt' },
      },
      { ...machine('h100x2'), ...ortInstall('cuda12'), platform: 'linux', arch: 'x64', env: {} },
    );
    const probe = await backend.probe();
    assert.equal(probe.usable, true);
    assert.deepEqual(probe.details.warnings, [
      "onnxruntime-node 1.30.0's binding passes only deviceId to the CUDA and TensorRT providers: " +
        'cudnn_conv_algo_search, trt_fp16_enable, trt_engine_cache_enable, trt_engine_cache_path will not take effect',
    ]);
  });
});

describe('backend-cuda: session options', () => {
  const inputs = () => ({ ...machine('h100x2'), ...ortInstall('cuda12'), platform: 'linux', arch: 'x64', env: {} });

  it('asks for CUDA on the configured device, then CPU for what CUDA cannot run', () => {
    const options = new CudaBackend({ deviceId: 1 }, inputs()).sessionOptions();
    assert.deepEqual(options.executionProviders, [
      { name: 'cuda', deviceId: 1, cudnn_conv_algo_search: 'EXHAUSTIVE' },
      'cpu',
    ]);
    assert.equal((options.extra as Record<string, string>)['session.intra_op.allow_spinning'], '0');
  });

  it('puts TensorRT with its fp16 and engine cache options first, and drops it once a probe finds it missing', async () => {
    const config = { fp16: true, tensorrt: { enabled: true, engineCache: true, engineCachePath: '/var/cache/trt' } };
    const backend = new CudaBackend(config, inputs());
    assert.deepEqual(backend.sessionOptions().executionProviders?.[0], {
      name: 'tensorrt',
      deviceId: 0,
      trt_fp16_enable: true,
      trt_engine_cache_enable: true,
      trt_engine_cache_path: '/var/cache/trt',
    });
    const withoutTrt = new CudaBackend(config, {
      ...inputs(),
      ...ortInstall('cuda12'),
      ortBackends: () => [
        { name: 'cpu', bundled: true },
        { name: 'cuda', bundled: false },
      ],
    });
    const probe = await withoutTrt.probe();
    assert.equal(
      probe.details.tensorrt.reason,
      'onnxruntime-node 1.30.0 is built without the TensorRT execution provider',
    );
    assert.deepEqual(
      withoutTrt.sessionOptions().executionProviders?.map((ep) => (typeof ep === 'string' ? ep : ep.name)),
      ['cuda', 'cpu'],
    );
  });

  it("takes a model's own deviceId and rejects a malformed one with the key named", () => {
    const backend = new CudaBackend({}, inputs());
    assert.deepEqual(backend.sessionOptions({ deviceId: 1, intraOpNumThreads: 3 }).executionProviders?.[0], {
      name: 'cuda',
      deviceId: 1,
      cudnn_conv_algo_search: 'EXHAUSTIVE',
    });
    assert.throws(() => backend.sessionOptions({ deviceId: -1 }), {
      code: 'invalid_backend_option',
      status: 400,
      message: "cuda backend option 'deviceId' must be an integer >= 0, got -1",
    });
    assert.throws(() => backend.sessionOptions({ tensorrt: { enabled: 'yes' } }), {
      message: 'cuda backend option \'tensorrt.enabled\' must be true or false, got "yes"',
    });
  });
});

describe('backend-cuda: this machine', () => {
  it('reports unusable with the reason, never throwing', async function () {
    if (existsSync('/proc/driver/nvidia')) this.skip();
    const probe = await new CudaBackend().probe();
    assert.equal(probe.usable, false);
    assert.equal(probe.reason, 'no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found');
    // The installed onnxruntime-node was installed with its download script denied.
    assert.match(
      probe.details.problems.join('\n'),
      /installed without CUDA libraries|built without the CUDA execution provider/,
    );
  });
});
