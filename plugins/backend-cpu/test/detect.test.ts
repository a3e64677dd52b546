import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import {
  type CpuFacts,
  type CpuHost,
  cgroupCpuLimit,
  cgroupMemory,
  CpuBackend,
  cpuProbe,
  defaultIntraOpThreads,
  readCpuFacts,
} from '@nucleus/plugin-backend-cpu';

const GiB = 1024 ** 3;

/** A 64-core host with 256 GiB, as `node:os` reports it. */
const HOST: CpuHost = {
  cpus: () => Array.from({ length: 64 }, () => ({ model: '  AMD EPYC 7763 64-Core Processor  ', speed: 2450 })),
  totalmem: () => 256 * GiB,
  freemem: () => 200 * GiB,
  availableParallelism: () => 64,
  arch: () => 'x64',
};

/** A filesystem root holding just the given files. */
function root(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-cpu-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  roots.push(dir);
  return dir;
}
const roots: string[] = [];

describe('backend-cpu: detection from cgroup files and host facts', () => {
  after(() => {
    for (const dir of roots) rmSync(dir, { recursive: true, force: true });
  });

  it('reads a cgroup v2 CPU quota and memory limit; "max" means no limit', () => {
    const limited = root({ 'sys/fs/cgroup/cpu.max': '150000 100000\n', 'sys/fs/cgroup/memory.max': '4294967296\n' });
    assert.equal(cgroupCpuLimit(limited), 1.5);
    assert.deepEqual(cgroupMemory(limited), { limitBytes: 4 * GiB });
    const open = root({
      'sys/fs/cgroup/cpu.max': 'max 100000',
      'sys/fs/cgroup/memory.max': 'max',
      'sys/fs/cgroup/memory.current': '1000',
    });
    assert.equal(cgroupCpuLimit(open), undefined);
    assert.deepEqual(cgroupMemory(open), { usedBytes: 1000 });
  });

  it('falls back to cgroup v1, where -1 and a page-rounded INT64_MAX mean no limit', () => {
    const v1 = root({
      'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '200000',
      'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      'sys/fs/cgroup/memory/memory.limit_in_bytes': '2147483648',
      'sys/fs/cgroup/memory/memory.usage_in_bytes': '1073741824',
    });
    assert.equal(cgroupCpuLimit(v1), 2);
    assert.deepEqual(cgroupMemory(v1), { limitBytes: 2 * GiB, usedBytes: GiB });
    const unlimited = root({
      'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1',
      'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      'sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712',
    });
    assert.equal(cgroupCpuLimit(unlimited), undefined);
    assert.deepEqual(cgroupMemory(unlimited), {});
    assert.deepEqual(cgroupMemory(root({})), {});
  });

  it('in a 2-CPU, 4 GiB container on a 64-core host: the limits win, and 2 threads per operator', () => {
    const facts = readCpuFacts({
      root: root({
        'sys/fs/cgroup/cpu.max': '200000 100000',
        'sys/fs/cgroup/memory.max': String(4 * GiB),
        'sys/fs/cgroup/memory.current': String(3 * GiB),
      }),
      host: HOST,
    });
    assert.deepEqual(facts, {
      model: 'AMD EPYC 7763 64-Core Processor',
      arch: 'x64',
      logicalCores: 64,
      availableParallelism: 64,
      cgroupCpuLimit: 2,
      memoryTotalBytes: 4 * GiB,
      memoryFreeBytes: GiB,
      cgroupMemoryLimitBytes: 4 * GiB,
    });
    assert.equal(defaultIntraOpThreads(facts), 2);
  });

  it('a memory limit above the host’s memory changes nothing; a hidden cpuinfo falls back to the affinity count', () => {
    const facts = readCpuFacts({
      root: root({ 'sys/fs/cgroup/memory.max': String(512 * GiB) }),
      host: { ...HOST, cpus: () => [], availableParallelism: () => 8 },
    });
    assert.equal(facts.memoryTotalBytes, 256 * GiB);
    assert.equal(facts.memoryFreeBytes, 200 * GiB);
    assert.equal(facts.model, 'unknown CPU');
    assert.equal(facts.logicalCores, 8);
    assert.equal(defaultIntraOpThreads(facts), 8);
  });

  it('a fractional quota rounds down but never below one thread; the affinity mask also bounds it', () => {
    const base: CpuFacts = {
      model: 'cpu',
      arch: 'arm64',
      logicalCores: 16,
      availableParallelism: 4,
      memoryTotalBytes: 1,
      memoryFreeBytes: 1,
    };
    assert.equal(defaultIntraOpThreads({ ...base, cgroupCpuLimit: 0.5 }), 1);
    assert.equal(defaultIntraOpThreads({ ...base, cgroupCpuLimit: 3.9 }), 3);
    assert.equal(defaultIntraOpThreads({ ...base, cgroupCpuLimit: 12 }), 4);
    assert.equal(defaultIntraOpThreads(base), 4);
  });

  it('the probe is always usable with one device that carries the facts', () => {
    const facts = readCpuFacts({ root: root({ 'sys/fs/cgroup/cpu.max': '100000 100000' }), host: HOST });
    const probe = cpuProbe(facts, 1);
    assert.equal(probe.usable, true);
    assert.deepEqual(probe.executionProviders, ['cpu']);
    assert.equal(probe.devices.length, 1);
    assert.deepEqual(probe.devices[0]!.extra, { arch: 'x64', cores: 64, availableParallelism: 64, cgroupCpuLimit: 1 });
    assert.equal(probe.devices[0]!.memoryTotalBytes, 256 * GiB);
    assert.deepEqual(probe.details, { intraOpNumThreads: 1, memory: { totalBytes: 256 * GiB, freeBytes: 200 * GiB } });
  });

  it('front processes sharing the cores split the automatic thread count; a configured count stands', () => {
    const inputs = { root: root({}), host: HOST };
    assert.equal(new CpuBackend({}, inputs).sessionOptions().intraOpNumThreads, 64);
    assert.equal(new CpuBackend({}, inputs, 4).sessionOptions().intraOpNumThreads, 16);
    assert.equal(
      new CpuBackend({}, { ...inputs, host: { ...HOST, availableParallelism: () => 2 } }, 3).sessionOptions()
        .intraOpNumThreads,
      1,
    );
    assert.equal(new CpuBackend({ intraOpNumThreads: 6 }, inputs, 4).sessionOptions().intraOpNumThreads, 6);
  });
});
