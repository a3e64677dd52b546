import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  NucleusError,
  sha256File,
  type Contribution,
  type ExtensionPointView,
  type Logger,
  type ModelSourceProvider,
} from '@nucleus/sdk';
import { ProgressReporter } from '../kernel/progress-reporter.js';

/** What a source is located with. */
export interface LocateOptions {
  /** Hex SHA-256 a single-file source must have (`models[].sha256`). */
  sha256?: string;
  signal?: AbortSignal;
}

// `scheme://…`; a Windows drive (`C:\`) has no `//` and stays a path.
const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;

/**
 * The `modelSource` extension point, read: turns a model source into a local path. A source with a URI scheme goes to
 * the provider that handles the scheme (which fetches it into its cache); anything else is a local path, relative to
 * the working directory. A pinned SHA-256 is checked for local files here, and passed to providers for theirs.
 */
export class ModelLocator {
  readonly #providers: () => readonly Contribution<ModelSourceProvider>[];
  readonly #view: ExtensionPointView<ModelSourceProvider> | undefined;
  readonly #log: Logger;
  // One fetch (or pin check) per source at a time. Nothing is kept once it settles: a later load asks again, so a
  // branch that moved is seen and a pinned file that was replaced is hashed again (a cached file costs no request).
  readonly #located = new Map<string, Promise<string>>();

  constructor(providers: ExtensionPointView<ModelSourceProvider> | readonly ModelSourceProvider[], logger: Logger) {
    if (Array.isArray(providers)) {
      const list = (providers as readonly ModelSourceProvider[]).map((value, i) => ({
        value,
        name: `provider-${i}`,
        priority: 0,
        pluginId: 'local',
        pluginVersion: '0.0.0',
      }));
      this.#providers = () => list;
    } else {
      this.#view = providers as ExtensionPointView<ModelSourceProvider>;
      this.#providers = () => this.#view!.list();
    }
    this.#log = logger;
  }

  /** The scheme of a source (`hf`, `https`), lowercase; undefined for a local path. */
  static schemeOf(source: string): string | undefined {
    return SCHEME.exec(source)?.[1]?.toLowerCase();
  }

  /** The local, absolute path `source` names once fetched; a 400 `NucleusError` when no active plugin handles its scheme. */
  async locate(source: string, options: LocateOptions = {}): Promise<string> {
    const sha256 = options.sha256?.toLowerCase();
    const scheme = ModelLocator.schemeOf(source);
    if (scheme === undefined) {
      const path = resolve(source);
      return sha256 === undefined ? path : this.#once(`${path}\0${sha256}`, () => checkPin(source, path, sha256));
    }
    const provider = this.#providers().find((c) => c.value.schemes.includes(scheme));
    if (!provider) throw this.#unsupported(source, scheme);
    return this.#once(`${source}\0${sha256 ?? ''}`, async () => {
      const reporter = new ProgressReporter({ logger: this.#log });
      const fetch = (p: ModelSourceProvider) =>
        p.fetch(source, {
          ...(sha256 !== undefined && { sha256 }),
          ...(options.signal && { signal: options.signal }),
          progress: () => reporter.create(),
          logger: this.#log,
        });
      return resolve(await (this.#view ? this.#view.use(provider, fetch) : fetch(provider.value)));
    });
  }

  /** The active providers, for listings. */
  providers(): readonly ModelSourceProvider[] {
    return this.#providers().map((c) => c.value);
  }

  #once(key: string, fetch: () => Promise<string>): Promise<string> {
    let pending = this.#located.get(key);
    if (!pending) {
      const started = fetch();
      pending = started;
      this.#located.set(key, started);
      const settled = () => {
        if (this.#located.get(key) === started) this.#located.delete(key);
      };
      started.then(settled, settled);
    }
    return pending;
  }

  #unsupported(source: string, scheme: string): NucleusError {
    const handled = this.#providers().map(
      (c) => `${c.value.schemes.map((s) => `${s}://`).join(', ')} (${c.value.accepts})`,
    );
    return new NucleusError(
      400,
      'unsupported_model_source',
      [
        `no active plugin fetches ${scheme}:// sources such as ${source}.`,
        handled.length
          ? `Sources handled: ${handled.join('; ')}; anything without a scheme is a local path.`
          : 'No model source plugin is active (only local paths load): enable one, e.g. source-hub, with `plugins.disabled` or POST /admin/plugins/<id>/enable.',
      ].join(' '),
    );
  }
}

// A pinned local file, hashed at each load; a folder cannot be pinned.
async function checkPin(source: string, path: string, sha256: string): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (info?.isFile() !== true) {
    throw new NucleusError(
      400,
      'model_sha256_mismatch',
      `model source ${source} has a sha256 pin but is ${info ? 'a folder' : 'missing'}; a pin applies to a single file`,
    );
  }
  const actual = await sha256File(path);
  if (actual !== sha256) {
    throw new NucleusError(
      400,
      'model_sha256_mismatch',
      `model source ${source} has sha256 ${actual}, not the pinned ${sha256}; refusing to load it (check the file, or the pin in models[].sha256)`,
    );
  }
  return path;
}
