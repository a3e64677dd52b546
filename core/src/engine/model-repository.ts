import { existsSync } from 'node:fs';
import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative } from 'node:path';
import type { BuiltinModel, Logger } from '@nucleus/sdk';
import type { NucleusConfig } from '../kernel/config/index.js';
import { defaultModelCacheDir } from './model-cache-dir.js';

/** A `models:` entry of the config, typed from its schema. */
export type ConfiguredModel = NucleusConfig['models'][number];

/** Per-model serving options from the config. */
export type ModelOptions = Omit<ConfiguredModel, 'name' | 'path' | 'version' | 'optional' | 'fallback'>;

/** One model version found on disk, ready to be loaded. */
export interface ModelSource {
  name: string;
  version: string;
  origin: 'config' | 'repository' | 'builtin' | 'runtime';
  /** The version folder. */
  dir: string;
  modelPath: string;
  /** model.json beside model.onnx, when there is one. */
  manifestPath?: string;
  options: ModelOptions;
}

/** A model version a source names but that cannot be loaded as it is. */
export interface SourceProblem {
  name: string;
  version: string;
  path: string;
  reason: string;
}

/** Where models come from. */
export interface ModelRepositoryOptions {
  /** The configured models it serves, read when it scans (which engine serves a model is known only once plugins are active). */
  models: () => readonly ConfiguredModel[];
  /** A folder of `<name>/<version>/model.onnx`, or null. */
  repository: string | null;
  /** Serve the built-in models when nothing else is configured. */
  builtinModels: boolean;
  /** The built-in models plugins contribute; the tensor ones are served when the built-ins are. */
  builtins?: () => readonly BuiltinModel[];
  /** Where built-in models are generated; default `defaultModelCacheDir()`. */
  cacheDir?: string;
  logger?: Logger;
}

const MODEL_FILE = 'model.onnx';
const MANIFEST_FILE = 'model.json';
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Orders version labels: numerically when both are numbers, else as text with numeric runs compared as numbers. */
export function compareVersions(a: string, b: string): number {
  const x = Number(a);
  const y = Number(b);
  if (a.trim() !== '' && b.trim() !== '' && Number.isFinite(x) && Number.isFinite(y)) return x - y;
  return a.localeCompare(b, 'en', { numeric: true });
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

function manifestBeside(modelPath: string): string | undefined {
  const path = join(dirname(modelPath), MANIFEST_FILE);
  return existsSync(path) ? path : undefined;
}

/**
 * Finds model versions: config `models` entries first, then the `modelRepository` folder, and the generated
 * built-in models when neither names anything. A name and version found twice is served from the first source.
 */
export class ModelRepository {
  constructor(private readonly options: ModelRepositoryOptions) {}

  /** True when neither `models` nor `modelRepository` is configured, so the built-ins are served. */
  get servesBuiltins(): boolean {
    return this.options.builtinModels && this.options.models().length === 0 && this.options.repository === null;
  }

  /** Every loadable version and every problem found, in source order. */
  async scan(): Promise<{ sources: ModelSource[]; problems: SourceProblem[] }> {
    const sources: ModelSource[] = [];
    const problems: SourceProblem[] = [];
    const seen = new Set<string>();
    const add = (source: ModelSource): void => {
      const key = `${source.name}\u0000${source.version}`;
      if (seen.has(key)) {
        this.options.logger?.warn(
          { model: source.name, version: source.version, ignored: source.modelPath },
          'model version found twice; the first source wins',
        );
        return;
      }
      seen.add(key);
      sources.push(source);
    };
    for (const entry of this.options.models()) await this.#configured(entry, add, problems);
    if (this.options.repository !== null) await this.#repository(this.options.repository, add, problems);
    if (this.servesBuiltins) {
      const cacheDir = this.options.cacheDir ?? defaultModelCacheDir();
      for (const builtin of this.options.builtins?.() ?? []) {
        if (builtin.kind !== 'tensor') continue;
        const dir = await builtin.prepare(cacheDir);
        const modelPath = join(dir, MODEL_FILE);
        add({
          name: builtin.name,
          version: basename(dir),
          origin: 'builtin',
          dir,
          modelPath,
          ...this.#manifest(modelPath),
          options: {},
        });
      }
    }
    return { sources, problems };
  }

  async #configured(entry: ConfiguredModel, add: (s: ModelSource) => void, problems: SourceProblem[]): Promise<void> {
    const { name, path, version, optional: _optional, ...options } = entry;
    const problem = (reason: string, v = version ?? '1'): void =>
      void problems.push({ name, version: v, path, reason });
    if (!existsSync(path)) return problem(`models entry "${name}": ${path} does not exist`);
    if (!(await isDir(path))) {
      if (!path.endsWith('.onnx')) return problem(`models entry "${name}": ${path} is not an .onnx file or a folder`);
      const folder = basename(dirname(path));
      add({
        name,
        version: version ?? (/^\d+$/.test(folder) ? folder : '1'),
        origin: 'config',
        dir: dirname(path),
        modelPath: path,
        ...this.#manifest(path),
        options,
      });
      return;
    }
    const direct = join(path, MODEL_FILE);
    if (existsSync(direct)) {
      const folder = basename(path);
      add({
        name,
        version: version ?? (/^\d+$/.test(folder) ? folder : '1'),
        origin: 'config',
        dir: path,
        modelPath: direct,
        ...this.#manifest(direct),
        options,
      });
      return;
    }
    // A model folder of version folders: serve each, or only the one named.
    const versions = this.#folders(await readdir(path, { withFileTypes: true }), path).filter((d) =>
      existsSync(join(path, d.name, MODEL_FILE)),
    );
    const chosen = version === undefined ? versions : versions.filter((d) => d.name === version);
    if (chosen.length === 0) {
      return problem(
        version === undefined
          ? `models entry "${name}": ${path} holds no ${MODEL_FILE} and no version folder with one`
          : `models entry "${name}": ${path} has no version folder "${version}" with a ${MODEL_FILE}`,
      );
    }
    for (const d of chosen) {
      const modelPath = join(path, d.name, MODEL_FILE);
      add({
        name,
        version: d.name,
        origin: 'config',
        dir: join(path, d.name),
        modelPath,
        ...this.#manifest(modelPath),
        options,
      });
    }
  }

  async #repository(root: string, add: (s: ModelSource) => void, problems: SourceProblem[]): Promise<void> {
    if (!(await isDir(root))) {
      problems.push({ name: '*', version: '*', path: root, reason: `modelRepository ${root} is not a folder` });
      return;
    }
    const realRoot = await realpath(root);
    const models = this.#folders(await readdir(root, { withFileTypes: true }), root)
      .filter((d) => NAME.test(d.name))
      .sort((a, b) => a.name.localeCompare(b.name));
    for (const model of models) {
      const dir = join(root, model.name);
      const versions = this.#folders(await readdir(dir, { withFileTypes: true }), dir)
        .map((d) => d.name)
        .sort(compareVersions);
      for (const version of versions) {
        const modelPath = join(dir, version, MODEL_FILE);
        if (!existsSync(modelPath)) {
          problems.push({
            name: model.name,
            version,
            path: join(dir, version),
            reason: `${join(dir, version)} has no ${MODEL_FILE}`,
          });
          continue;
        }
        // A model.onnx linked from outside the repository is not the repository's to serve.
        const rel = relative(realRoot, await realpath(modelPath));
        if (rel.startsWith('..') || isAbsolute(rel)) {
          problems.push({
            name: model.name,
            version,
            path: join(model.name, version, MODEL_FILE),
            reason: `${join(model.name, version, MODEL_FILE)} in the model repository is a symlink that leads outside it; refusing to load it`,
          });
          continue;
        }
        add({
          name: model.name,
          version,
          origin: 'repository',
          dir: join(dir, version),
          modelPath,
          ...this.#manifest(modelPath),
          options: {},
        });
      }
    }
  }

  // The folders of a listing; symlinked ones are not followed (one could lead anywhere), and each is logged as skipped.
  #folders(entries: Dirent[], parent: string): Dirent[] {
    for (const d of entries.filter((e) => e.isSymbolicLink()))
      this.options.logger?.warn(
        { folder: join(parent, d.name) },
        'a symlink in a model folder is not followed; skipped (copy or move the model there instead)',
      );
    return entries.filter((d) => d.isDirectory());
  }

  #manifest(modelPath: string): { manifestPath?: string } {
    const manifestPath = manifestBeside(modelPath);
    return manifestPath === undefined ? {} : { manifestPath };
  }
}
