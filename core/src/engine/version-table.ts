import {
  notFound,
  type ModelInfo,
  type ModelVersionInfo,
  type ModelVersionState,
  type RepositoryEntry,
} from '@nucleus/sdk';
import type { LoadedModel } from './loaded-model.js';
import { compareVersions, type ModelSource, type SourceProblem } from './model-repository.js';

/** One version of a model the engine knows: found in a source, loading, serving, failed or unloaded. */
export interface VersionEntry {
  name: string;
  version: string;
  source?: ModelSource;
  model?: LoadedModel;
  state: ModelVersionState;
  reason?: string;
}

export function label(name: string, version: string): string {
  return `model '${name}' version '${version}'`;
}

/** The tensor engine's models and their versions, and how a request's name and version pick one (404s included). */
export class VersionTable {
  readonly #entries = new Map<string, Map<string, VersionEntry>>();

  /** Every model name, sorted. */
  names(): string[] {
    return [...this.#entries.keys()].sort();
  }

  /** Every version of every model. */
  *all(): Iterable<VersionEntry> {
    for (const versions of this.#entries.values()) yield* versions.values();
  }

  /** The versions of a model, or undefined when it is unknown. */
  find(name: string): Map<string, VersionEntry> | undefined {
    return this.#entries.get(name);
  }

  /** The versions of a model; 404 saying which models there are when it has none. */
  versions(name: string): Map<string, VersionEntry> {
    const versions = this.#entries.get(name);
    if (!versions || versions.size === 0) {
      const known = this.names().join(', ') || 'none';
      throw notFound('model_not_found', `no model named '${name}' (models: ${known})`);
    }
    return versions;
  }

  /** One version; 404 saying which versions there are when it is unknown. */
  version(name: string, versions: Map<string, VersionEntry>, version: string): VersionEntry {
    const entry = versions.get(version);
    if (!entry) {
      const known = [...versions.keys()].sort(compareVersions).join(', ');
      throw notFound('version_not_found', `model '${name}' has no version '${version}' (versions: ${known})`);
    }
    return entry;
  }

  /** The entry of a version, made (in state `state`) when the model or version is new. */
  entry(name: string, version: string, state: ModelVersionState): VersionEntry {
    let versions = this.#entries.get(name);
    if (!versions) this.#entries.set(name, (versions = new Map()));
    let entry = versions.get(version);
    if (!entry) versions.set(version, (entry = { name, version, state }));
    return entry;
  }

  /** Puts `entry` in place of whatever the table held for its version. */
  replace(entry: VersionEntry): void {
    this.entry(entry.name, entry.version, entry.state);
    this.#entries.get(entry.name)!.set(entry.version, entry);
  }

  /** Drops a version; the name goes with its last version. */
  forget(entry: VersionEntry): void {
    const versions = this.#entries.get(entry.name);
    versions?.delete(entry.version);
    if (versions?.size === 0) this.#entries.delete(entry.name);
  }

  /** The highest ready label: the version a request naming none goes to. */
  defaultEntry(versions: Map<string, VersionEntry>): VersionEntry | undefined {
    // A loop, as every request without a version comes here.
    let best: VersionEntry | undefined;
    for (const e of versions.values())
      if (e.model?.state === 'ready' && (!best || compareVersions(e.version, best.version) > 0)) best = e;
    return best;
  }

  /** The version a description is of: the one named, else the default, else the highest label; 404 when unknown. */
  chosen(name: string, version: string | undefined): VersionEntry {
    const versions = this.versions(name);
    if (version !== undefined) return this.version(name, versions, version);
    return (
      this.defaultEntry(versions) ?? [...versions.values()].sort((a, b) => compareVersions(b.version, a.version))[0]!
    );
  }

  info(entry: VersionEntry): ModelVersionInfo {
    if (entry.model) {
      const info = entry.model.info();
      return { ...info, state: entry.state, ...(entry.reason !== undefined && { reason: entry.reason }) };
    }
    return {
      name: entry.name,
      version: entry.version,
      state: entry.state,
      ...(entry.reason !== undefined && { reason: entry.reason }),
      origin: entry.source?.origin ?? 'config',
      path: entry.source?.modelPath ?? '',
      inputs: [],
      outputs: [],
      metadata: {},
    };
  }

  modelInfo(name: string): ModelInfo {
    const versions = this.#entries.get(name)!;
    const chosen = this.defaultEntry(versions);
    return {
      name,
      ...(chosen && { defaultVersion: chosen.version }),
      versions: [...versions.values()].sort((a, b) => compareVersions(a.version, b.version)).map((e) => this.info(e)),
    };
  }

  /**
   * The repository index: every version the sources hold (`unavailable` until loaded) or could not read (`failed`),
   * then what this table knows of each, sorted by name and version.
   */
  repositoryIndex(sources: readonly ModelSource[], problems: readonly SourceProblem[]): RepositoryEntry[] {
    const rows = new Map<string, RepositoryEntry>();
    const key = (n: string, v: string): string => `${n}\u0000${v}`;
    for (const s of sources)
      rows.set(key(s.name, s.version), { name: s.name, version: s.version, state: 'unavailable' });
    for (const p of problems)
      rows.set(key(p.name, p.version), { name: p.name, version: p.version, state: 'failed', reason: p.reason });
    for (const e of this.all()) {
      rows.set(key(e.name, e.version), {
        name: e.name,
        version: e.version,
        state: e.state,
        ...(e.reason !== undefined && { reason: e.reason }),
      });
    }
    return [...rows.values()].sort((a, b) => a.name.localeCompare(b.name) || compareVersions(a.version, b.version));
  }
}
