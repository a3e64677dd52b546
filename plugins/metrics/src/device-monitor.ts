import type { Backend, ExtensionPointView, Logger, NucleusEvents } from '@nucleus/sdk';

/** How long one probe may take before a scrape goes on without it. */
const PROBE_TIMEOUT_MS = 3000;

/**
 * Reads GPU memory and utilization from the GPU backends' probes, at most once per interval and only
 * when asked (at scrape time), so a machine without a GPU pays for one probe per backend and no more:
 * a backend found unusable is not probed again until the backend contributions change.
 */
export class DeviceMonitor {
  private lastProbe = 0;
  private inFlight: Promise<void> | undefined;
  private readonly unusable = new Set<string>();
  private readonly offChange: () => void;

  constructor(
    private readonly backends: ExtensionPointView<Backend>,
    private readonly intervalMs: number,
    private readonly report: (device: NucleusEvents['device.stats']) => void,
    private readonly logger: Logger,
  ) {
    this.offChange = backends.onChange(() => this.unusable.clear());
  }

  /** Probes the GPU backends when the last probe is older than the interval; concurrent callers share one probe. */
  refresh(now = Date.now()): Promise<void> {
    if (this.intervalMs <= 0 || now - this.lastProbe < this.intervalMs) return this.inFlight ?? Promise.resolve();
    this.lastProbe = now;
    this.inFlight = this.probeAll().finally(() => (this.inFlight = undefined));
    return this.inFlight;
  }

  /** Stops listening for backend changes. */
  close(): void {
    this.offChange();
  }

  private async probeAll(): Promise<void> {
    const gpus = this.backends
      .list()
      .filter((c) => c.value.name !== 'cpu' && !this.unusable.has(`${c.pluginId}/${c.name}`));
    await Promise.all(
      gpus.map(async (c) => {
        try {
          const probe = await this.backends.use(c, (b) => withTimeout(b.probe(), PROBE_TIMEOUT_MS));
          if (!probe) return;
          if (!probe.usable) return void this.unusable.add(`${c.pluginId}/${c.name}`);
          for (const d of probe.devices) {
            if (d.vendor === 'cpu' || d.memoryTotalBytes === undefined) continue;
            this.report({
              backend: c.value.name,
              device: d.id,
              name: d.name,
              memoryTotalBytes: d.memoryTotalBytes,
              memoryUsedBytes: d.memoryFreeBytes === undefined ? 0 : d.memoryTotalBytes - d.memoryFreeBytes,
              ...(d.utilizationPercent === undefined ? {} : { utilizationPercent: d.utilizationPercent }),
            });
          }
        } catch (err) {
          this.logger.debug({ err, backend: c.value.name }, 'GPU probe for metrics failed');
        }
      }),
    );
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms).unref()));
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
