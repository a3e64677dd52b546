import assert from 'node:assert/strict';
import {
  applyCudaVisibleDevices,
  CUDA_DEFAULTS,
  type CommandRunner,
  cudaProviderOptions,
  detectCuda,
  nvidiaSmiArgs,
  parseNvidiaDriverVersion,
  parseNvidiaGpuInformation,
  parseNvidiaSmiCsv,
  queryNvidiaSmi,
  tunedProviderOptionKeys,
} from '@nucleus/plugin-backend-cuda';
import { machineRoot, removeRoots } from './machine-root.js';

// What `nvidia-smi --query-gpu=<fields> --format=csv,noheader,nounits` prints on a 2×H100 host.
const SMI_2XH100 = [
  '0, NVIDIA H100 80GB HBM3, GPU-5d1bd2a1-0c3e-4a4b-9e69-7f4e2b1f0a11, 81559, 1, 80649, 0, 550.54.15, 9.0',
  '1, NVIDIA H100 80GB HBM3, GPU-9a0c7e55-2b1d-4f6a-8c3e-1d2e3f4a5b66, 81559, 40000, 41000, 87, 550.54.15, 9.0',
  '',
].join('\n');
const VERSION_FILE =
  'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.2.0\n';

/** Replays tool output: nvidia-smi answers `stdout`; ldconfig and anything else are not installed. */
function replay(nvidiaSmi: Awaited<ReturnType<CommandRunner>>, calls: string[][] = []): CommandRunner {
  return async (file, args) => {
    calls.push([file, ...args]);
    return file === 'nvidia-smi' ? nvidiaSmi : { ok: false, missing: true };
  };
}

describe('backend-cuda: parsing what the driver and nvidia-smi say', () => {
  it('reads each GPU line, memory in MiB, and skips [N/A] fields and lines with the wrong number of cells', () => {
    const gpus = parseNvidiaSmiCsv(
      `${SMI_2XH100}2, NVIDIA A100-SXM4-40GB (MIG), GPU-abc, 40960, [N/A], [N/A], [Not Supported], 535.1, 8.0\n0, broken line\n`,
    );
    assert.equal(gpus.length, 3);
    assert.deepEqual(gpus[1], {
      index: 1,
      name: 'NVIDIA H100 80GB HBM3',
      uuid: 'GPU-9a0c7e55-2b1d-4f6a-8c3e-1d2e3f4a5b66',
      memoryTotalMiB: 81559,
      memoryUsedMiB: 40000,
      memoryFreeMiB: 41000,
      utilizationPercent: 87,
      driverVersion: '550.54.15',
      computeCapability: '9.0',
    });
    assert.deepEqual(Object.keys(gpus[2]!).sort(), [
      'computeCapability',
      'driverVersion',
      'index',
      'memoryTotalMiB',
      'name',
      'uuid',
    ]);
  });

  it('reads the kernel module version of the proprietary and the open driver, and a GPU information file', () => {
    assert.equal(parseNvidiaDriverVersion(VERSION_FILE), '550.54.15');
    assert.equal(
      parseNvidiaDriverVersion('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build'),
      '560.35.03',
    );
    assert.equal(parseNvidiaDriverVersion('nothing here'), undefined);
    assert.deepEqual(
      parseNvidiaGpuInformation(
        '0000:18:00.0',
        'Model: \t\t NVIDIA H100 80GB HBM3\nGPU UUID: \t GPU-5d1b\nBus Location: \t 0000:18:00.0\nDevice Minor: \t 3\nGPU Excluded: \t Yes\n',
      ),
      { busId: '0000:18:00.0', model: 'NVIDIA H100 80GB HBM3', uuid: 'GPU-5d1b', deviceMinor: 3, excluded: true },
    );
  });

  it('numbers GPUs as CUDA_VISIBLE_DEVICES does: by index or unique UUID prefix, stopping at the first miss', () => {
    const gpus = [0, 1, 2].map((index) => ({ index, uuid: `GPU-${index}${index}aa` }));
    assert.deepEqual(applyCudaVisibleDevices(gpus, undefined), gpus);
    assert.deepEqual(applyCudaVisibleDevices(gpus, '2,0'), [gpus[2], gpus[0]]);
    assert.deepEqual(applyCudaVisibleDevices(gpus, 'GPU-11,7,0'), [gpus[1]]);
    // "GPU-" alone matches all three: ambiguous, so nothing after it counts either.
    assert.deepEqual(applyCudaVisibleDevices(gpus, 'GPU-,1'), []);
    assert.deepEqual(applyCudaVisibleDevices(gpus, '1,1,2'), [gpus[1]]);
    assert.deepEqual(applyCudaVisibleDevices(gpus, ''), []);
  });

  it('asks a driver older than R510 again without compute_cap, and quotes a failure in nvidia-smi’s words', async () => {
    const calls: string[][] = [];
    const old: CommandRunner = async (file, args) => {
      calls.push([file, ...args]);
      return args[0]!.includes('compute_cap')
        ? {
            ok: false,
            missing: false,
            exitCode: 2,
            output: 'Field "compute_cap" is not a valid field to query.',
            error: '',
          }
        : { ok: true, stdout: '0, Tesla T4, GPU-1, 15360, 0, 15360, 0, 470.82.01\n' };
    };
    const result = await queryNvidiaSmi(old);
    assert.equal(result.status, 'ok');
    assert.equal(calls.length, 2);
    assert.deepEqual(
      calls[1]!.slice(1),
      nvidiaSmiArgs([
        'index',
        'name',
        'uuid',
        'memory.total',
        'memory.used',
        'memory.free',
        'utilization.gpu',
        'driver_version',
      ]),
    );
    assert.equal(result.status === 'ok' && result.gpus[0]!.name, 'Tesla T4');
    const failed = await queryNvidiaSmi(
      replay({
        ok: false,
        missing: false,
        exitCode: 9,
        output: 'NVIDIA-SMI has failed because it couldn’t communicate with the NVIDIA driver.',
        error: '',
      }),
    );
    assert.equal(failed.status, 'failed');
    assert.match(failed.status === 'failed' ? failed.message : '', /couldn’t communicate with the NVIDIA driver/);
  });
});

describe('backend-cuda: detection on a recorded machine', () => {
  after(removeRoots);

  const h100Root = () =>
    machineRoot({
      'proc/driver/nvidia/version': VERSION_FILE,
      'proc/driver/nvidia/gpus/0000:18:00.0/information':
        'Model: NVIDIA H100 80GB HBM3\nGPU UUID: GPU-5d1bd2a1-0c3e-4a4b-9e69-7f4e2b1f0a11\nBus Location: 0000:18:00.0\nGPU Excluded: No\n',
      'proc/driver/nvidia/gpus/0000:2a:00.0/information':
        'Model: NVIDIA H100 80GB HBM3\nGPU UUID: GPU-9a0c7e55-2b1d-4f6a-8c3e-1d2e3f4a5b66\nBus Location: 0000:2a:00.0\nGPU Excluded: No\n',
    });

  it('lists the GPUs CUDA will see, with memory, utilization and bus ids, and checks deviceId against them', async () => {
    const probe = await detectCuda(
      {
        root: h100Root(),
        run: replay({ ok: true, stdout: SMI_2XH100 }),
        ortPackageDir: null,
        env: { CUDA_VISIBLE_DEVICES: '1' },
      },
      { deviceId: 0, tensorrt: false },
    );
    assert.equal(probe.devices.length, 1);
    const gpu = probe.devices[0]!;
    assert.deepEqual(
      [
        gpu.id,
        gpu.name,
        gpu.vendor,
        gpu.memoryTotalBytes,
        gpu.memoryFreeBytes,
        gpu.utilizationPercent,
        gpu.driverVersion,
      ],
      [0, 'NVIDIA H100 80GB HBM3', 'nvidia', 81559 * 2 ** 20, 41000 * 2 ** 20, 87, '550.54.15'],
    );
    assert.deepEqual(gpu.extra, {
      nvidiaSmiIndex: 1,
      uuid: 'GPU-9a0c7e55-2b1d-4f6a-8c3e-1d2e3f4a5b66',
      computeCapability: '9.0',
      busId: '0000:2a:00.0',
      memoryUsedBytes: 40000 * 2 ** 20,
    });
    assert.equal(probe.details.cudaVisibleDevices, '1');
    // The driver side is fine; what is left is the missing onnxruntime-node.
    assert.deepEqual(probe.details.problems, [
      'onnxruntime-node is not installed where the backend-cuda plugin can load it: run npm install',
    ]);
    const beyond = await detectCuda(
      { root: h100Root(), run: replay({ ok: true, stdout: SMI_2XH100 }), ortPackageDir: null, env: {} },
      { deviceId: 2, tensorrt: false },
    );
    assert.equal(beyond.reason, 'deviceId 2 is configured but CUDA sees 2 GPUs (ids 0-1)');
  });

  it('without nvidia-smi, reads the GPUs from /proc in bus order and warns that memory is unknown', async () => {
    const probe = await detectCuda({
      root: h100Root(),
      run: replay({ ok: false, missing: true }),
      ortPackageDir: null,
      env: {},
    });
    assert.deepEqual(
      probe.devices.map((d) => [d.id, d.extra?.busId, d.memoryTotalBytes]),
      [
        [0, '0000:18:00.0', undefined],
        [1, '0000:2a:00.0', undefined],
      ],
    );
    assert.equal(probe.details.nvidiaSmi, 'missing');
    assert.match(probe.details.warnings[0]!, /^nvidia-smi was not found/);
  });

  it('says which problem comes first: no driver, a driver too old, or every GPU hidden', async () => {
    const none = await detectCuda({
      root: machineRoot({}),
      run: replay({ ok: false, missing: true }),
      ortPackageDir: null,
      env: {},
    });
    assert.equal(none.usable, false);
    assert.equal(none.reason, 'no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found');
    assert.deepEqual(none.devices, []);
    const old = await detectCuda({
      root: machineRoot({
        'proc/driver/nvidia/version': 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.82.01  Oct 2021\n',
      }),
      run: replay({ ok: true, stdout: '0, Tesla T4, GPU-1, 15360, 0, 15360, 0, 470.82.01, 7.5\n' }),
      ortPackageDir: null,
      env: {},
    });
    assert.equal(
      old.reason,
      'NVIDIA driver 470.82.01 is too old for the CUDA 12 build of onnxruntime-node (needs 525.60.13 or newer)',
    );
    const hidden = await detectCuda({
      root: h100Root(),
      run: replay({ ok: true, stdout: SMI_2XH100 }),
      ortPackageDir: null,
      env: { CUDA_VISIBLE_DEVICES: 'none' },
    });
    assert.equal(hidden.reason, 'CUDA_VISIBLE_DEVICES="none" hides every GPU from CUDA');
  });
});

describe('backend-cuda: provider options', () => {
  it('passes deviceId and ORT’s option names, and lists only the keys tuned away from ORT’s defaults', () => {
    const tuned = {
      ...CUDA_DEFAULTS,
      deviceId: 1,
      cudnnConvAlgoSearch: 'HEURISTIC' as const,
      fp16: true,
      tensorrt: { enabled: true, engineCache: true, engineCachePath: '/cache/trt' },
    };
    assert.deepEqual(cudaProviderOptions(tuned), {
      cuda: { name: 'cuda', deviceId: 1, cudnn_conv_algo_search: 'HEURISTIC' },
      tensorrt: {
        name: 'tensorrt',
        deviceId: 1,
        trt_fp16_enable: true,
        trt_engine_cache_enable: true,
        trt_engine_cache_path: '/cache/trt',
      },
    });
    assert.deepEqual(tunedProviderOptionKeys(tuned), [
      'cudnn_conv_algo_search',
      'trt_fp16_enable',
      'trt_engine_cache_enable',
      'trt_engine_cache_path',
    ]);
    // TensorRT's options matter only with TensorRT on.
    assert.deepEqual(tunedProviderOptionKeys({ ...CUDA_DEFAULTS, fp16: true }), []);
  });
});
