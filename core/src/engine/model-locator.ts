import { realpath, stat } from 'node:fs/promises';
import { basename, isAbsolute, join, relative, resolve } from 'node:path';
import {
  NucleusError,
  sha256File,
  type Contribution,
  type ExtensionPointView,
  type Logger,
  type ModelSourceProvider,
  type Sha256Pin,
} from '@nucleus/sdk';
import { ProgressReporter } from '../kernel/progress-reporter.js';

/** What a source is located with. */
export interface LocateOptions {
  /** Hex SHA-256 a single-file source must have, or a folder's pins by file (`models[].sha256`). */
  sha256?: Sha256Pin;
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
    const pins = options.sha256 === undefined ? undefined : normalisePin(options.sha256);
    const sha256 = typeof pins === 'string' ? pins : undefined;
    const scheme = ModelLocator.schemeOf(source);
    if (scheme === undefined) {
      const path = resolve(source);
      return pins === undefined
        ? path
        : this.#once(`${path}\0${JSON.stringify(pins)}`, () => checkPins(source, path, pins));
    }
    const provider = this.#providers().find((c) => c.value.schemes.includes(scheme));
    if (!provider) throw this.#unsupported(source, scheme);
    return this.#once(`${source}\0${JSON.stringify(pins ?? '')}`, async () => {
      const reporter = new ProgressReporter({ logger: this.#log });
      const fetch = (p: ModelSourceProvider) =>
        p.fetch(source, {
          ...(sha256 !== undefined && { sha256 }),
          ...(options.signal && { signal: options.signal }),
          progress: () => reporter.create(),
          logger: this.#log,
        });
      const path = resolve(await (this.#view ? this.#view.use(provider, fetch) : fetch(provider.value)));
      // A provider checks a single file's pin as it fetches; a folder's pins by file are checked here, on its copy.
      return pins !== undefined && typeof pins !== 'string' ? checkPins(source, path, pins) : path;
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

// Digests compared in lowercase, whichever case the config spelt them in.
function normalisePin(pin: Sha256Pin): string | Record<string, string> {
  if (typeof pin === 'string') return pin.toLowerCase();
  return Object.fromEntries(Object.entries(pin).map(([file, hex]) => [file, hex.toLowerCase()]));
}

const mismatch = (message: string) => new NucleusError(400, 'model_sha256_mismatch', message);

/**
 * A pinned source, hashed at each load: a file against its digest, a folder file by file against its map (a file
 * against a map with its own name in it). Paths in a map are inside the folder: one that leads out of it, itself or
 * through a symlink, is refused. Messages name the source and the pinned names only, as the caller gave them.
 */
async function checkPins(source: string, path: string, pins: string | Record<string, string>): Promise<string> {
  const info = await stat(path).catch(() => undefined);
  if (!info) throw mismatch(`model source ${source} has a sha256 pin but is missing`);
  if (typeof pins === 'string') {
    if (!info.isFile())
      throw mismatch(
        `model source ${source} is a folder; pin its files by name instead of with one digest, e.g. sha256: {"model.safetensors": "<hex>"}`,
      );
    await checkFile(path, pins, `model source ${source}`);
    return path;
  }
  if (info.isFile()) {
    const own = pins[basename(path)];
    const others = Object.keys(pins).filter((name) => name !== basename(path));
    if (own === undefined || others.length > 0)
      throw mismatch(
        `model source ${source} is a single file; its pin is one digest (or a map naming only ${basename(path)})`,
      );
    await checkFile(path, own, `model source ${source}`);
    return path;
  }
  const root = await realpath(path);
  for (const [name, hex] of Object.entries(pins)) {
    const file = join(path, name);
    const real = await realpath(file).catch(() => undefined);
    const inside = (p: string) => {
      const rel = relative(root, p);
      return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel);
    };
    if (isAbsolute(name) || !inside(resolve(root, name)))
      throw mismatch(`model source ${source} pins ${name}, which is not a path inside the folder`);
    if (real === undefined) throw mismatch(`model source ${source} has no file ${name}, which its sha256 pins`);
    if (!inside(real))
      throw mismatch(`${name} in model source ${source} leads outside the folder; refusing to load it`);
    if (!(await stat(real)).isFile()) throw mismatch(`${name} in model source ${source} is not a file`);
    await checkFile(real, hex, `${name} in model source ${source}`);
  }
  return path;
}

async function checkFile(path: string, sha256: string, what: string): Promise<void> {
  const actual = await sha256File(path);
  if (actual !== sha256) {
    throw mismatch(
      `${what} has sha256 ${actual}, not the pinned ${sha256}; refusing to load it (check the file, or the pin in models[].sha256)`,
    );
  }
}
