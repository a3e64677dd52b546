import { readFileSync } from 'node:fs';
import * as os from 'node:os';
import { join } from 'node:path';
import type { BackendProbe } from '@nucleus/sdk';

/** The parts of `node:os` CPU detection reads; tests pass their own. */
export interface CpuHost {
  cpus(): Array<{ model: string; speed: number }>;
  totalmem(): number;
  freemem(): number;
  availableParallelism(): number;
  arch(): string;
}

/** Where CPU detection looks: a filesystem root (for cgroup limits) and the OS facts. */
export interface CpuProbeInputs {
  /** Filesystem root holding `sys/fs/cgroup`; default `/`. */
  root?: string;
  host?: CpuHost;
}

/** What this machine offers the CPU backend, container limits applied. */
export interface CpuFacts {
  model: string;
  arch: string;
  /** Logical CPUs the kernel reports. */
  logicalCores: number;
  /** CPUs this process may run on (affinity mask). */
  availableParallelism: number;
  /** CPUs' worth of time the cgroup quota allows, when one is set. */
  cgroupCpuLimit?: number;
  /** Host memory, or the cgroup limit when that is lower. */
  memoryTotalBytes: number;
  memoryFreeBytes: number;
  cgroupMemoryLimitBytes?: number;
}

// cgroup v1 reports "no limit" as a page-rounded INT64_MAX rather than a keyword.
const V1_UNLIMITED = 2 ** 60;

function readText(root: string, path: string): string | undefined {
  try {
    return readFileSync(join(root, path), 'utf8').trim();
  } catch {
    return undefined;
  }
}

function positiveNumber(text: string | undefined): number | undefined {
  if (text === undefined || text === '' || text === 'max') return undefined;
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

/** The cgroup CPU quota in CPUs (v2 `cpu.max`, else v1 `cfs_quota_us`), or undefined when unlimited. */
export function cgroupCpuLimit(root = '/'): number | undefined {
  const v2 = readText(root, 'sys/fs/cgroup/cpu.max');
  if (v2 !== undefined) {
    const [quota, period] = v2.split(/\s+/);
    const q = positiveNumber(quota);
    const p = positiveNumber(period);
    return q !== undefined && p !== undefined ? q / p : undefined;
  }
  const q = positiveNumber(readText(root, 'sys/fs/cgroup/cpu/cpu.cfs_quota_us'));
  const p = positiveNumber(readText(root, 'sys/fs/cgroup/cpu/cpu.cfs_period_us'));
  return q !== undefined && p !== undefined ? q / p : undefined;
}

/** The cgroup memory limit and usage in bytes (v2, else v1), each undefined when not set. */
export function cgroupMemory(root = '/'): { limitBytes?: number; usedBytes?: number } {
  const v2 = readText(root, 'sys/fs/cgroup/memory.max');
  if (v2 !== undefined) {
    const limitBytes = positiveNumber(v2);
    const usedBytes = positiveNumber(readText(root, 'sys/fs/cgroup/memory.current'));
    return { ...(limitBytes !== undefined && { limitBytes }), ...(usedBytes !== undefined && { usedBytes }) };
  }
  const limit = positiveNumber(readText(root, 'sys/fs/cgroup/memory/memory.limit_in_bytes'));
  const usedBytes = positiveNumber(readText(root, 'sys/fs/cgroup/memory/memory.usage_in_bytes'));
  return {
    ...(limit !== undefined && limit < V1_UNLIMITED && { limitBytes: limit }),
    ...(usedBytes !== undefined && { usedBytes }),
  };
}

/** Reads the CPU model, core counts and memory, with container (cgroup) limits applied. */
export function readCpuFacts(inputs: CpuProbeInputs = {}): CpuFacts {
  const root = inputs.root ?? '/';
  const host = inputs.host ?? os;
  const cpus = host.cpus();
  const availableParallelism = host.availableParallelism();
  const cpuLimit = cgroupCpuLimit(root);
  const memory = cgroupMemory(root);
  let total = host.totalmem();
  let free = host.freemem();
  if (memory.limitBytes !== undefined && memory.limitBytes < total) {
    total = memory.limitBytes;
    free = Math.min(free, Math.max(0, memory.limitBytes - (memory.usedBytes ?? 0)));
  }
  return {
    model: cpus[0]?.model.trim() || 'unknown CPU',
    arch: host.arch(),
    // Some sandboxes hide /proc/cpuinfo and os.cpus() comes back empty.
    logicalCores: cpus.length > 0 ? cpus.length : availableParallelism,
    availableParallelism,
    ...(cpuLimit !== undefined && { cgroupCpuLimit: cpuLimit }),
    memoryTotalBytes: total,
    memoryFreeBytes: free,
    ...(memory.limitBytes !== undefined && { cgroupMemoryLimitBytes: memory.limitBytes }),
  };
}

/** Threads for one operator when config leaves it to Nucleus: ORT counts host cores and ignores a cgroup quota, so a 2-CPU container on a 64-core host would get 64 threads. */
export function defaultIntraOpThreads(facts: CpuFacts): number {
  const limit = facts.cgroupCpuLimit === undefined ? Infinity : Math.max(1, Math.floor(facts.cgroupCpuLimit));
  return Math.max(1, Math.min(facts.availableParallelism, limit));
}

/** The CPU backend's probe for these facts: always usable, one device. */
export function cpuProbe(facts: CpuFacts, intraOpNumThreads: number): BackendProbe {
  return {
    usable: true,
    devices: [
      {
        id: 0,
        name: facts.model,
        vendor: 'cpu',
        memoryTotalBytes: facts.memoryTotalBytes,
        memoryFreeBytes: facts.memoryFreeBytes,
        extra: {
          arch: facts.arch,
          cores: facts.logicalCores,
          availableParallelism: facts.availableParallelism,
          ...(facts.cgroupCpuLimit !== undefined && { cgroupCpuLimit: facts.cgroupCpuLimit }),
        },
      },
    ],
    executionProviders: ['cpu'],
    details: {
      intraOpNumThreads,
      memory: {
        totalBytes: facts.memoryTotalBytes,
        freeBytes: facts.memoryFreeBytes,
        ...(facts.cgroupMemoryLimitBytes !== undefined && { cgroupLimitBytes: facts.cgroupMemoryLimitBytes }),
      },
    },
  };
}
