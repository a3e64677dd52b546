import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ExtensionPoints, type Backend, type NucleusEvents } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { BackendSelector } from './helpers.js';

describe('backend plugins in a running kernel', () => {
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({
      plugins: ['backend-cpu', 'backend-cuda', 'backend-rocm'].map((p) => join(REPO_ROOT, 'plugins', p)),
      config: { 'plugin.backend-cpu.deterministic': true, 'plugin.backend-cuda.tensorrt': { enabled: true } },
      // No model loads, so no probe has yet found TensorRT missing when the options are first read.
      builtinModels: false,
    });
  });
  after(async () => {
    await kit.stop();
  });

  it('each plugin contributes its backend, ranked cuda > rocm > cpu', () => {
    const view = kit.kernel.extensions.point<Backend>(ExtensionPoints.backend);
    assert.deepEqual(
      view.list().map((c) => [c.name, c.pluginId, c.priority]),
      [
        ['cuda', 'backend-cuda', 100],
        ['rocm', 'backend-rocm', 90],
        ['cpu', 'backend-cpu', 0],
      ],
    );
  });

  it('config sections arrive validated with defaults: deterministic CPU, TensorRT before CUDA', () => {
    const view = kit.kernel.extensions.point<Backend>(ExtensionPoints.backend);
    const cpu = view.find('cpu')?.value.sessionOptions();
    assert.equal(cpu?.intraOpNumThreads, 1);
    assert.equal((cpu?.extra as Record<string, string> | undefined)?.['session.use_deterministic_compute'], '1');
    const cuda = view.find('cuda')?.value.sessionOptions();
    assert.deepEqual(cuda?.executionProviders?.[0], {
      name: 'tensorrt',
      deviceId: 0,
      trt_fp16_enable: false,
      trt_engine_cache_enable: true,
      trt_engine_cache_path: '.cache/tensorrt',
    });
  });

  it('on this machine: auto is cpu, cuda and rocm fall back to cpu with their reasons on the event bus', async function () {
    if (existsSync('/proc/driver/nvidia') || existsSync('/dev/kfd')) this.skip();
    const fallbacks: Array<NucleusEvents['backend.fallback']> = [];
    const off = kit.kernel.events.on('backend.fallback', (e) => fallbacks.push(e));
    try {
      const selector = new BackendSelector(kit.kernel.extensions.point<Backend>(ExtensionPoints.backend), {
        events: kit.kernel.events,
      });
      assert.equal((await selector.select('auto')).backend.name, 'cpu');
      const cuda = await selector.select('cuda');
      const rocm = await selector.select('rocm');
      assert.equal(
        cuda.fallbackReason,
        "backend 'cuda' is unusable: no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found; running on cpu instead",
      );
      assert.equal(
        rocm.fallbackReason,
        "backend 'rocm' is unusable: no AMD GPU driver: /dev/kfd is absent and rocm-smi was not found; running on cpu instead",
      );
      assert.deepEqual(
        fallbacks.map((f) => [f.requested, f.chosen]),
        [
          ['cuda', 'cpu'],
          ['rocm', 'cpu'],
        ],
      );
      const status = await selector.status();
      assert.deepEqual(
        status.map((s) => [s.name, s.pluginId, s.probe.usable]),
        [
          ['cuda', 'backend-cuda', false],
          ['rocm', 'backend-rocm', false],
          ['cpu', 'backend-cpu', true],
        ],
      );
    } finally {
      off();
    }
  });
});
