import assert from 'node:assert/strict';
import * as os from 'node:os';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { CpuBackend, DETERMINISTIC_SESSION_CONFIG, readCpuFacts, type CpuHost } from '@nucleus/plugin-backend-cpu';
import { FIXTURES } from './helpers.js';
import { addModel } from './tiny-model.js';

const GiB = 1024 ** 3;

/** A 64-core, 512 GiB host, as a container on it would see through node:os. */
const bigHost: CpuHost = {
  cpus: () => Array.from({ length: 64 }, () => ({ model: 'AMD EPYC 9554 64-Core Processor', speed: 3100 })),
  totalmem: () => 512 * GiB,
  freemem: () => 500 * GiB,
  availableParallelism: () => 64,
  arch: () => 'x64',
};

async function add(options: ort.InferenceSession.SessionOptions): Promise<number[]> {
  const session = await ort.InferenceSession.create(addModel(), options);
  try {
    const out = await session.run({
      a: new ort.Tensor('float32', [1, 2, 3], [3]),
      b: new ort.Tensor('float32', [10, 20, 30], [3]),
    });
    return Array.from(out.c?.data as Float32Array);
  } finally {
    await session.release();
  }
}

describe('backend-cpu: probe', () => {
  it('on this machine: usable, the CPU model from os.cpus(), its cores and host memory', async () => {
    const probe = await new CpuBackend().probe();
    assert.equal(probe.usable, true);
    assert.deepEqual(probe.executionProviders, ['cpu']);
    const [device] = probe.devices;
    assert.equal(device?.name, os.cpus()[0]?.model.trim());
    assert.equal(device?.vendor, 'cpu');
    assert.equal(device?.extra?.cores, os.cpus().length);
    assert.ok((device?.memoryTotalBytes ?? 0) > 0 && (device?.memoryTotalBytes ?? 0) <= os.totalmem());
    assert.ok(
      (device?.memoryFreeBytes ?? -1) >= 0 && (device?.memoryFreeBytes ?? Infinity) <= (device?.memoryTotalBytes ?? 0),
    );
  });

  it('in a 2-CPU, 4 GiB cgroup on a 64-core host: reports the limits and uses 2 threads, not 64', async () => {
    const inputs = { root: join(FIXTURES, 'machines/cgroup-2cpu/root'), host: bigHost };
    const facts = readCpuFacts(inputs);
    assert.deepEqual(facts, {
      model: 'AMD EPYC 9554 64-Core Processor',
      arch: 'x64',
      logicalCores: 64,
      availableParallelism: 64,
      cgroupCpuLimit: 2,
      memoryTotalBytes: 4 * GiB,
      memoryFreeBytes: 3 * GiB,
      cgroupMemoryLimitBytes: 4 * GiB,
    });
    const backend = new CpuBackend({}, inputs);
    const probe = await backend.probe();
    assert.equal(probe.details?.intraOpNumThreads, 2);
    assert.equal(backend.sessionOptions().intraOpNumThreads, 2);
    assert.equal(new CpuBackend({ intraOpNumThreads: 8 }, inputs).sessionOptions().intraOpNumThreads, 8);
  });

  it('without a cgroup limit, takes every CPU the process may use', () => {
    const backend = new CpuBackend({}, { root: join(FIXTURES, 'machines/nothing/root'), host: bigHost });
    assert.equal(backend.sessionOptions().intraOpNumThreads, 64);
  });
});

describe('backend-cpu: session options', () => {
  const inputs = { root: join(FIXTURES, 'machines/cgroup-2cpu/root'), host: bigHost };

  it('by default: sequential, all optimizations, arena on, no spinning', () => {
    assert.deepEqual(new CpuBackend({}, inputs).sessionOptions(), {
      executionProviders: ['cpu'],
      intraOpNumThreads: 2,
      graphOptimizationLevel: 'all',
      enableCpuMemArena: true,
      executionMode: 'sequential',
      extra: { 'session.intra_op.allow_spinning': '0', 'session.inter_op.allow_spinning': '0' },
    });
  });

  it('deterministic mode: one thread each, sequential, ORT deterministic kernels, denormals kept, no spinning', () => {
    const options = new CpuBackend(
      { deterministic: true, allowSpinning: true, executionMode: 'parallel', intraOpNumThreads: 8 },
      inputs,
    ).sessionOptions();
    assert.deepEqual(options, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      enableCpuMemArena: true,
      executionMode: 'sequential',
      extra: {
        'session.intra_op.allow_spinning': '0',
        'session.inter_op.allow_spinning': '0',
        'session.use_deterministic_compute': '1',
        'session.set_denormal_as_zero': '0',
      },
    });
    assert.deepEqual(Object.keys(DETERMINISTIC_SESSION_CONFIG), [
      'session.use_deterministic_compute',
      'session.set_denormal_as_zero',
    ]);
  });

  it("lays a model's own options over the config, ignores other backends' keys and names a bad one", () => {
    const backend = new CpuBackend({ sessionConfig: { 'session.set_denormal_as_zero': '1' } }, inputs);
    const options = backend.sessionOptions({
      intraOpNumThreads: 1,
      graphOptimizationLevel: 'basic',
      deviceId: 3,
      sessionConfig: { 'session.disable_prepacking': '1' },
    });
    assert.equal(options.intraOpNumThreads, 1);
    assert.equal(options.graphOptimizationLevel, 'basic');
    assert.equal((options.extra as Record<string, string>)['session.set_denormal_as_zero'], '1');
    assert.equal((options.extra as Record<string, string>)['session.disable_prepacking'], '1');
    assert.throws(() => backend.sessionOptions({ graphOptimizationLevel: 'max' }), {
      status: 400,
      code: 'invalid_backend_option',
      message:
        'cpu backend option \'graphOptimizationLevel\' must be one of disabled, basic, extended, layout, all, got "max"',
    });
  });

  it('ORT accepts every combination and runs the model', async () => {
    for (const config of [
      {},
      { deterministic: true },
      { allowSpinning: true, executionMode: 'parallel' as const, interOpNumThreads: 2, enableCpuMemArena: false },
      ...(['disabled', 'basic', 'extended', 'layout'] as const).map((graphOptimizationLevel) => ({
        graphOptimizationLevel,
      })),
    ]) {
      assert.deepEqual(await add(new CpuBackend(config).sessionOptions()), [11, 22, 33], JSON.stringify(config));
    }
  });
});
