import {
  NucleusError,
  unavailable,
  type Backend,
  type BackendProbe,
  type Contribution,
  type EventBus,
  type ExtensionPointView,
  type Logger,
  type SessionOptions,
} from '@nucleus/sdk';

/** What `select()` chose and why. */
export interface BackendSelection {
  backend: Backend;
  probe: BackendProbe;
  /** The backend config asked for: `auto`, `cpu`, `cuda`, `rocm` or a plugin's own name. */
  requested: string;
  /** Set when the request could not be honoured and CPU was chosen instead; the server logs it and reports /ready as degraded. */
  fallbackReason?: string;
}

/** The backend a worker's session opens on, chosen on the main thread: its name and the session options it gave. */
export interface WorkerBackendSpec {
  backend: { name: string; requested: string; options: SessionOptions; fallbackReason?: string };
  /** Where to retry when ORT rejects the backend's provider. */
  fallback?: { name: string; options: SessionOptions };
}

/** The worker's spec of what `selection` chose for `requested`; CPU (`cpu`, when installed) is its fallback. */
export function workerBackendSpec(
  selection: BackendSelection,
  requested: string,
  cpu: Backend | undefined,
): WorkerBackendSpec {
  return {
    backend: {
      name: selection.backend.name,
      requested,
      options: selection.backend.sessionOptions(),
      ...(selection.fallbackReason !== undefined && { fallbackReason: selection.fallbackReason }),
    },
    ...(cpu &&
      selection.backend.name !== CPU_BACKEND && { fallback: { name: cpu.name, options: cpu.sessionOptions() } }),
  };
}

/** One installed backend and its latest probe, for `/status`. */
export interface BackendStatus {
  name: string;
  rank: number;
  pluginId?: string;
  probe: BackendProbe;
}

/** The backends to choose from: a live extension point view, or a fixed list. */
export type BackendSource = ExtensionPointView<Backend> | readonly (Contribution<Backend> | Backend)[];

/** Options of a {@link BackendSelector}. */
export interface BackendSelectorOptions {
  /** Receives `backend.fallback` whenever a request falls back to CPU. */
  events?: Pick<EventBus, 'emit'>;
  logger?: Logger;
  /** How long a probe result is reused. Default 60 s; GPU memory figures age, driver state rarely changes. */
  probeTtlMs?: number;
  /** A probe that has not answered by then counts as unusable. Default 15 s. */
  probeTimeoutMs?: number;
  now?: () => number;
}

interface Entry {
  backend: Backend;
  contribution?: Contribution<Backend>;
}

interface CachedProbe {
  at: number;
  probe: Promise<BackendProbe>;
}

/** The name a config uses for CPU, and what every fallback lands on. */
export const CPU_BACKEND = 'cpu';

/** The error for a backend name no installed backend has, naming those that are. */
export function unknownBackend(requested: string, names: readonly string[]): NucleusError {
  return new NucleusError(
    422,
    'unknown_backend',
    `backend '${requested}' is not installed; the backends installed are ${names.join(', ')}`,
  );
}

function isView(source: BackendSource): source is ExtensionPointView<Backend> {
  return !Array.isArray(source);
}

function isContribution(item: Contribution<Backend> | Backend): item is Contribution<Backend> {
  return 'value' in item && 'pluginId' in item;
}

/** Chooses the backend a model runs on: `auto` takes the best usable one, a named one falls back to CPU with the reason. */
export class BackendSelector {
  readonly #source: BackendSource;
  readonly #events: Pick<EventBus, 'emit'> | undefined;
  readonly #logger: Logger | undefined;
  readonly #ttlMs: number;
  readonly #timeoutMs: number;
  readonly #now: () => number;
  // Keyed by the backend object, so a plugin reloaded under hot reload is probed afresh.
  #probes = new WeakMap<Backend, CachedProbe>();

  constructor(source: BackendSource, options: BackendSelectorOptions = {}) {
    this.#source = source;
    this.#events = options.events;
    this.#logger = options.logger;
    this.#ttlMs = options.probeTtlMs ?? 60_000;
    this.#timeoutMs = options.probeTimeoutMs ?? 15_000;
    this.#now = options.now ?? Date.now;
  }

  /** The installed backends, highest rank first (ties: contribution priority, then order). */
  backends(): Backend[] {
    return this.#entries().map((e) => e.backend);
  }

  /** The names a config can give: `auto` and every installed backend's. */
  names(): string[] {
    return ['auto', ...new Set(this.#entries().map((e) => e.backend.name))];
  }

  /** The installed backend with this name, if any. */
  find(name: string): Backend | undefined {
    return this.#find(name)?.backend;
  }

  /** Forgets cached probes, so the next `select()` or `status()` looks at the machine again. */
  refresh(): void {
    this.#probes = new WeakMap();
  }

  /** Probes a backend, reusing a result younger than the TTL; never rejects. */
  async probe(backend: Backend, options: { refresh?: boolean } = {}): Promise<BackendProbe> {
    const cached = this.#probes.get(backend);
    if (!options.refresh && cached !== undefined && this.#now() - cached.at < this.#ttlMs) return cached.probe;
    const entry = this.#entries().find((e) => e.backend === backend);
    const probe = this.#runProbe(backend, entry?.contribution);
    this.#probes.set(backend, { at: this.#now(), probe });
    return probe;
  }

  /** Every installed backend with its probe, for `/status`. */
  async status(options: { refresh?: boolean } = {}): Promise<BackendStatus[]> {
    return Promise.all(
      this.#entries().map(async ({ backend, contribution }) => ({
        name: backend.name,
        rank: backend.rank,
        ...(contribution !== undefined && { pluginId: contribution.pluginId }),
        probe: await this.probe(backend, options),
      })),
    );
  }

  /**
   * The backend for a `backend:` config value. `auto` picks the usable backend with the highest rank; a named
   * backend that is unusable falls back to CPU, with `fallbackReason` saying why. Rejects with a 422
   * `unknown_backend` for a name no installed backend has, and with a 503 when not even CPU is usable.
   */
  async select(requested: string = 'auto', options: { refresh?: boolean } = {}): Promise<BackendSelection> {
    const entries = this.#entries();
    if (requested === 'auto') {
      const probes = await Promise.all(entries.map((e) => this.probe(e.backend, options)));
      const best = entries.findIndex((_, i) => probes[i]?.usable === true);
      const chosen = entries[best];
      const probe = probes[best];
      if (chosen === undefined || probe === undefined) {
        const why = entries.map((e, i) => `${e.backend.name}: ${probes[i]?.reason ?? 'unusable'}`).join('; ');
        throw unavailable('no_backend', `no usable backend${why ? ` (${why})` : ': no backend plugin is active'}`);
      }
      return { backend: chosen.backend, probe, requested };
    }
    const wanted = this.#find(requested);
    // A name no plugin gives is a mistake in the config (a typo, a backend never installed), not a machine to fall back on.
    if (wanted === undefined) throw unknownBackend(requested, this.names());
    const probe = await this.probe(wanted.backend, options);
    if (probe.usable) return { backend: wanted.backend, probe, requested };
    const reason = `backend '${requested}' is unusable: ${probe.reason ?? 'its probe gave no reason'}`;
    if (requested === CPU_BACKEND) throw unavailable('no_backend', reason);
    const cpu = this.#find(CPU_BACKEND);
    const cpuProbe = cpu === undefined ? undefined : await this.probe(cpu.backend, options);
    if (cpu === undefined || cpuProbe === undefined || !cpuProbe.usable) {
      const why =
        cpu === undefined
          ? 'the cpu backend is not installed'
          : `the cpu backend is unusable: ${cpuProbe?.reason ?? 'no reason given'}`;
      throw unavailable('no_backend', `${reason}, and ${why}`);
    }
    const fallbackReason = `${reason}; running on cpu instead`;
    this.#reportFallback(requested, fallbackReason);
    return { backend: cpu.backend, probe: cpuProbe, requested, fallbackReason };
  }

  /** Tells the logger and the event bus that `requested` fell back to CPU. */
  reportFallback(requested: string, reason: string): void {
    this.#reportFallback(requested, reason);
  }

  #reportFallback(requested: string, reason: string): void {
    this.#logger?.warn({ requested, chosen: CPU_BACKEND, reason }, 'backend fallback');
    this.#events?.emit('backend.fallback', { requested, chosen: CPU_BACKEND, reason });
  }

  #entries(): Entry[] {
    const source = this.#source;
    const items: Entry[] = isView(source)
      ? source.list().map((c) => ({ backend: c.value, contribution: c }))
      : source.map((item) => (isContribution(item) ? { backend: item.value, contribution: item } : { backend: item }));
    // Array.prototype.sort is stable, so equal rank and priority keep contribution order.
    return items.sort(
      (a, b) => b.backend.rank - a.backend.rank || (b.contribution?.priority ?? 0) - (a.contribution?.priority ?? 0),
    );
  }

  #find(name: string): Entry | undefined {
    const entries = this.#entries();
    return entries.find((e) => e.backend.name === name) ?? entries.find((e) => e.contribution?.name === name);
  }

  async #runProbe(backend: Backend, contribution: Contribution<Backend> | undefined): Promise<BackendProbe> {
    const source = this.#source;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<BackendProbe>((resolve) => {
      timer = setTimeout(
        () =>
          resolve({
            usable: false,
            reason: `probe did not answer within ${this.#timeoutMs} ms`,
            devices: [],
            executionProviders: [],
          }),
        this.#timeoutMs,
      );
      timer.unref();
    });
    // Holding the contribution while probing keeps a hot reload from disposing the plugin mid-probe.
    const run = (b: Backend): Promise<BackendProbe> => b.probe();
    const probing = (contribution !== undefined && isView(source) ? source.use(contribution, run) : run(backend)).catch(
      (err: unknown): BackendProbe => ({
        usable: false,
        reason: `probe failed: ${err instanceof Error ? err.message : String(err)}`,
        devices: [],
        executionProviders: [],
      }),
    );
    try {
      const probe = await Promise.race([probing, timeout]);
      if (!probe.usable && probe.reason === undefined) return { ...probe, reason: 'its probe gave no reason' };
      return probe;
    } finally {
      clearTimeout(timer);
    }
  }
}
