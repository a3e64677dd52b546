import assert from 'node:assert/strict';
import type { Backend, BackendProbe, Contribution, NucleusEvents } from '@nucleus/sdk';
import { CpuBackend } from '@nucleus/plugin-backend-cpu';
import { CudaBackend } from '@nucleus/plugin-backend-cuda';
import { RocmBackend } from '@nucleus/plugin-backend-rocm';
import { BackendSelector, machine, ortInstall } from './helpers.js';

const linux = { platform: 'linux', arch: 'x64', env: {} };
const cudaOn = (m: string, ort: string, config = {}) =>
  new CudaBackend(config, { ...machine(m), ...ortInstall(ort), ...linux });
const rocmOn = (m: string, ort: string) => new RocmBackend({}, { ...machine(m), ...ortInstall(ort), ...linux });

/** Collects what the selector emits on the event bus. */
function recorder() {
  const fallbacks: Array<NucleusEvents['backend.fallback']> = [];
  return {
    fallbacks,
    events: {
      emit<K extends keyof NucleusEvents>(type: K, payload: NucleusEvents[K]) {
        if (type === 'backend.fallback') fallbacks.push(payload as NucleusEvents['backend.fallback']);
      },
    },
  };
}

/** A real backend whose probes are counted. */
function counted(backend: Backend): Backend & { probes: number } {
  const wrapper = {
    name: backend.name,
    rank: backend.rank,
    probes: 0,
    probe: async () => {
      wrapper.probes++;
      return backend.probe();
    },
    sessionOptions: (o?: Record<string, unknown>) => backend.sessionOptions(o),
  };
  return wrapper;
}

function contribution(value: Backend, pluginId: string, priority = 0): Contribution<Backend> {
  return { value, name: value.name, priority, pluginId, pluginVersion: '0.1.0' };
}

describe('BackendSelector', () => {
  it('auto picks the usable backend with the highest rank', async () => {
    const cuda = cudaOn('h100x2', 'cuda12');
    const selector = new BackendSelector([new CpuBackend(), rocmOn('nothing', 'cpu-only'), cuda]);
    const selection = await selector.select('auto');
    assert.equal(selection.backend, cuda);
    assert.equal(selection.requested, 'auto');
    assert.equal(selection.fallbackReason, undefined);
    assert.equal(selection.probe.devices.length, 2);
  });

  it('auto takes CPU when no GPU backend is usable, without calling it a fallback', async () => {
    const { events, fallbacks } = recorder();
    const selector = new BackendSelector(
      [cudaOn('a10g-driver-only', 'cpu-only'), rocmOn('mi300x', 'cpu-only'), new CpuBackend()],
      { events },
    );
    const selection = await selector.select('auto');
    assert.equal(selection.backend.name, 'cpu');
    assert.equal(selection.fallbackReason, undefined);
    assert.deepEqual(fallbacks, []);
  });

  it('a requested backend that is unusable falls back to CPU with its probe reason, logged and emitted', async () => {
    const { events, fallbacks } = recorder();
    const warnings: Array<{ obj: object | string; msg?: string }> = [];
    const log = (obj: object | string, msg?: string) => void warnings.push({ obj, ...(msg !== undefined && { msg }) });
    const logger = { trace() {}, debug() {}, info() {}, warn: log, error() {}, fatal() {}, child: () => logger };
    const selector = new BackendSelector([new CpuBackend(), cudaOn('nothing', 'cpu-only')], { events, logger });
    const selection = await selector.select('cuda');
    const reason =
      "backend 'cuda' is unusable: no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found; running on cpu instead";
    assert.equal(selection.backend.name, 'cpu');
    assert.equal(selection.requested, 'cuda');
    assert.equal(selection.fallbackReason, reason);
    assert.equal(selection.probe.usable, true);
    assert.deepEqual(fallbacks, [{ requested: 'cuda', chosen: 'cpu', reason }]);
    assert.deepEqual(warnings, [{ obj: { requested: 'cuda', chosen: 'cpu', reason }, msg: 'backend fallback' }]);
  });

  it('a requested backend that is not installed is an error naming those that are, not a fallback', async () => {
    const events: unknown[] = [];
    const selector = new BackendSelector([new CpuBackend(), cudaOn('h100x2', 'cuda12')], {
      events: { emit: (...e: unknown[]) => void events.push(e) } as never,
    });
    for (const name of ['rocm', 'cdua', 'tpu']) {
      await assert.rejects(selector.select(name), {
        status: 422,
        code: 'unknown_backend',
        message: `backend '${name}' is not installed; the backends installed are auto, cuda, cpu`,
      });
    }
    assert.deepEqual(events, []);
    assert.deepEqual(selector.names(), ['auto', 'cuda', 'cpu']);
  });

  it('a usable requested backend is used even when a higher-ranked one is usable too', async () => {
    const cpu = new CpuBackend();
    const selector = new BackendSelector([cudaOn('h100x2', 'cuda12'), cpu]);
    const selection = await selector.select('cpu');
    assert.equal(selection.backend, cpu);
    assert.equal(selection.fallbackReason, undefined);
  });

  it('answers 503 no_backend when not even CPU can run', async () => {
    await assert.rejects(new BackendSelector([cudaOn('nothing', 'cpu-only')]).select('cuda'), {
      status: 503,
      code: 'no_backend',
      message:
        "backend 'cuda' is unusable: no NVIDIA driver: /proc/driver/nvidia is absent and nvidia-smi was not found, and the cpu backend is not installed",
    });
    await assert.rejects(new BackendSelector([]).select('auto'), {
      code: 'no_backend',
      message: 'no usable backend: no backend plugin is active',
    });
  });

  it('reuses probes until the TTL passes or refresh() is called', async () => {
    let now = 0;
    const cpu = counted(new CpuBackend());
    const selector = new BackendSelector([cpu], { probeTtlMs: 1000, now: () => now });
    await selector.select('auto');
    await selector.select('cpu');
    await selector.status();
    assert.equal(cpu.probes, 1);
    now = 1500;
    await selector.select('auto');
    assert.equal(cpu.probes, 2);
    selector.refresh();
    await selector.select('auto');
    await selector.select('auto', { refresh: true });
    assert.equal(cpu.probes, 4);
  });

  it('turns a probe that throws or hangs into an unusable backend with the reason', async () => {
    const hanging: Backend = {
      name: 'npu',
      rank: 200,
      probe: () => new Promise<BackendProbe>(() => {}),
      sessionOptions: () => ({}),
    };
    const throwing: Backend = {
      name: 'tpu',
      rank: 150,
      probe: () => Promise.reject(new Error('driver ioctl failed')),
      sessionOptions: () => ({}),
    };
    const selector = new BackendSelector([hanging, throwing, new CpuBackend()], { probeTimeoutMs: 50 });
    assert.equal((await selector.select('auto')).backend.name, 'cpu');
    assert.equal(
      (await selector.select('npu')).fallbackReason,
      "backend 'npu' is unusable: probe did not answer within 50 ms; running on cpu instead",
    );
    assert.equal(
      (await selector.select('tpu')).fallbackReason,
      "backend 'tpu' is unusable: probe failed: driver ioctl failed; running on cpu instead",
    );
  });

  it('status() lists every backend, highest rank first, with its plugin and probe', async () => {
    const selector = new BackendSelector([
      contribution(new CpuBackend(), 'backend-cpu'),
      contribution(rocmOn('mi300x', 'cpu-only'), 'backend-rocm', 90),
      contribution(cudaOn('h100x2', 'cuda12'), 'backend-cuda', 100),
    ]);
    const status = await selector.status();
    assert.deepEqual(
      status.map((s) => [s.name, s.rank, s.pluginId, s.probe.usable, s.probe.devices.length]),
      [
        ['cuda', 100, 'backend-cuda', true, 2],
        ['rocm', 90, 'backend-rocm', false, 2],
        ['cpu', 0, 'backend-cpu', true, 1],
      ],
    );
  });
});
