import { cpus, freemem, platform, release, totalmem } from 'node:os';
import { createRequire } from 'node:module';

/** What a benchmark ran on, recorded with every result. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  freeMemoryGiB: number;
  os: string;
  node: string;
  onnxruntime: string;
  date: string;
}

/** Facts about this machine and runtime. */
export function machineInfo(): MachineInfo {
  const ortVersion = (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    freeMemoryGiB: Math.round((freemem() / 2 ** 30) * 10) / 10,
    os: `${platform()} ${release()}`,
    node: process.version,
    onnxruntime: ortVersion,
    date: new Date().toISOString(),
  };
}
