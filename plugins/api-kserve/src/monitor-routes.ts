import { stat } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import type { Backend, ExtensionPointView, GenerationService, InferenceService, RouteContribution } from '@nucleus/sdk';

/** How long one backend probe may take before /monitor/gpu answers without it. */
const PROBE_TIMEOUT_MS = 3000;

/** One GPU backend as `/monitor/gpu` reports it: its devices when usable, else why not. */
export interface GpuBackendReport {
  backend: string;
  pluginId: string;
  usable: boolean;
  reason?: string;
  devices: Array<{
    id: number;
    name: string;
    vendor: string;
    memoryTotalBytes?: number;
    memoryFreeBytes?: number;
    memoryUsedBytes?: number;
    utilizationPercent?: number;
    driverVersion?: string;
  }>;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Probes every non-CPU backend contribution; a probe that throws or hangs is reported as unusable with its error. */
export async function probeGpuBackends(backends: ExtensionPointView<Backend>): Promise<GpuBackendReport[]> {
  const gpus = backends.list().filter((c) => c.value.name !== 'cpu');
  return Promise.all(
    gpus.map(async (c): Promise<GpuBackendReport> => {
      const base = { backend: c.value.name, pluginId: c.pluginId };
      try {
        const probe = await backends.use(c, (b) =>
          withTimeout(b.probe(), PROBE_TIMEOUT_MS, `the ${c.value.name} probe`),
        );
        return {
          ...base,
          usable: probe.usable,
          ...(probe.reason !== undefined && { reason: probe.reason }),
          devices: probe.devices
            .filter((d) => d.vendor !== 'cpu')
            .map((d) => ({
              id: d.id,
              name: d.name,
              vendor: d.vendor,
              ...(d.memoryTotalBytes !== undefined && { memoryTotalBytes: d.memoryTotalBytes }),
              ...(d.memoryFreeBytes !== undefined && { memoryFreeBytes: d.memoryFreeBytes }),
              ...(d.memoryTotalBytes !== undefined &&
                d.memoryFreeBytes !== undefined && { memoryUsedBytes: d.memoryTotalBytes - d.memoryFreeBytes }),
              ...(d.utilizationPercent !== undefined && { utilizationPercent: d.utilizationPercent }),
              ...(d.driverVersion !== undefined && { driverVersion: d.driverVersion }),
            })),
        };
      } catch (err) {
        return { ...base, usable: false, reason: (err as Error).message, devices: [] };
      }
    }),
  );
}

async function fileBytes(path: string): Promise<number | undefined> {
  if (!path) return undefined;
  try {
    const s = await stat(path);
    return s.isFile() ? s.size : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `GET /monitor/gpu` (every device of the GPU backends' probes, and each unusable backend's reason) and
 * `GET /monitor/memory` (host memory, this process, and per loaded model version the memory its worker processes
 * measured, or an estimate from the model file for worker threads; per started LLM, the memory its worker processes
 * measured).
 */
export function monitorRoutes(
  service: () => InferenceService,
  backends: ExtensionPointView<Backend>,
  generation?: () => GenerationService | undefined,
): RouteContribution[] {
  return [
    {
      method: 'GET',
      path: '/monitor/gpu',
      handler: async () => {
        const reports = await probeGpuBackends(backends);
        return {
          devices: reports.flatMap((r) => r.devices.map((d) => ({ backend: r.backend, ...d }))),
          backends: reports,
        };
      },
    },
    {
      method: 'GET',
      path: '/monitor/memory',
      handler: async () => {
        const mem = process.memoryUsage();
        const versions = service()
          .list()
          .flatMap((m) => m.versions)
          .filter((v) => v.state === 'ready');
        const models = await Promise.all(
          versions.map(async (v) => {
            const workers = v.status?.workers ?? 1;
            const common = {
              name: v.name,
              version: v.version,
              ...(v.status && { backend: v.status.backend }),
              workers,
            };
            // Worker processes measure their own resident memory; threads share this process's, so for them the
            // estimate is the model file, which ORT holds once per worker.
            const replicas = v.status?.replicas ?? [];
            if (replicas.length > 0 && replicas.every((r) => r.rssBytes !== undefined)) {
              return {
                ...common,
                isolation: v.status?.isolation,
                measuredBytes: replicas.reduce((n, r) => n + r.rssBytes!, 0),
                replicas: replicas.map((r) => ({
                  id: r.id,
                  ...(r.pid !== undefined && { pid: r.pid }),
                  rssBytes: r.rssBytes!,
                })),
              };
            }
            const bytes = await fileBytes(v.path);
            return {
              ...common,
              ...(bytes !== undefined && { modelFileBytes: bytes, estimatedBytes: bytes * workers }),
            };
          }),
        );
        // The generation engine's models with workers: a process each replica measures itself; threads are part of
        // this process's memory.
        const llms = (generation?.()?.list() ?? [])
          .filter((m) => m.workers !== undefined && m.workers.length > 0)
          .map((m) => {
            const replicas = m.workers!;
            const common = {
              name: m.name,
              kind: m.kind,
              ...(m.worker && { isolation: m.worker.isolation }),
              workers: replicas.length,
            };
            if (!replicas.every((r) => r.rssBytes !== undefined)) return common;
            return {
              ...common,
              measuredBytes: replicas.reduce((n, r) => n + r.rssBytes!, 0),
              replicas: replicas.map((r) => ({
                id: r.id,
                ...(r.pid !== undefined && { pid: r.pid }),
                rssBytes: r.rssBytes!,
                ...(r.retiring && { retiring: true }),
              })),
            };
          });
        return {
          host: { totalBytes: totalmem(), freeBytes: freemem() },
          process: {
            rssBytes: mem.rss,
            heapTotalBytes: mem.heapTotal,
            heapUsedBytes: mem.heapUsed,
            externalBytes: mem.external,
            arrayBuffersBytes: mem.arrayBuffers,
          },
          models,
          llms,
        };
      },
    },
  ];
}
