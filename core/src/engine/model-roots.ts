import type { Dirent } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { NucleusError } from '@nucleus/sdk';
import { ModelLocator } from './model-locator.js';

// Entries of a model folder looked at for symlinks that lead out of the roots; deeper files are the format's.
const MAX_DEPTH = 2;
const MAX_ENTRIES = 10_000;

const within = (path: string, root: string): boolean => {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
};

// The real path of a file or folder, symlinks resolved; a missing one is taken as written (its load fails later).
const real = (path: string): Promise<string> => realpath(path).catch(() => resolve(path));

/**
 * `allowedModelRoots`: the folders every model must lie under, those configured at start included. Paths are compared once symlinks are
 * resolved, so a link inside a root that points elsewhere does not pass, and a model folder's own symlinks (a
 * `model.onnx` or a version folder linked from elsewhere) are followed too. Refusals name only what the caller sent.
 */
export class ModelRoots {
  constructor(private readonly roots: () => readonly string[] | null) {}

  /** Throws 403 `model_source_not_allowed` unless `source` (and `files` beside it, e.g. a tokenizer) lie under a root. */
  async check(source: string, files: readonly string[] = []): Promise<void> {
    const roots = this.roots();
    if (roots === null) return;
    const realRoots = await Promise.all(roots.map((r) => real(resolve(r))));
    const allowed = (path: string) => realRoots.some((root) => within(path, root));
    for (const given of [source, ...files]) {
      // A source with a scheme is fetched into its plugin's cache, which the plugin governs.
      if (ModelLocator.schemeOf(given) !== undefined) continue;
      const path = await real(resolve(given));
      if (!allowed(path)) throw outside(given);
      const info = await stat(path).catch(() => undefined);
      if (info?.isDirectory()) await this.#walk(given, path, allowed);
    }
  }

  /**
   * Throws 403 `model_source_not_allowed` unless the local copy a source with a scheme was fetched to lies under a
   * root: with roots set, every model's bytes come from under them, so the fetching plugin's cache must be there too.
   * The message names the source, not where its copy is.
   */
  async checkCopy(source: string, local: string): Promise<void> {
    const roots = this.roots();
    if (roots === null) return;
    const realRoots = await Promise.all(roots.map((r) => real(resolve(r))));
    const allowed = (path: string) => realRoots.some((root) => within(path, root));
    const path = await real(local);
    const info = await stat(path).catch(() => undefined);
    const inside =
      allowed(path) &&
      (!info?.isDirectory() ||
        (await this.#walk(source, path, allowed).then(
          () => true,
          () => false,
        )));
    if (!inside)
      throw new NucleusError(
        403,
        'model_source_not_allowed',
        `model source ${source} was fetched into a cache outside the folders models may be loaded from (allowedModelRoots); put the cache of the plugin that fetches it under one of them`,
      );
  }

  // The symlinks of a model folder, to MAX_DEPTH: each must resolve under a root too.
  async #walk(source: string, dir: string, allowed: (path: string) => boolean): Promise<void> {
    let seen = 0;
    const visit = async (folder: string, depth: number): Promise<void> => {
      const entries: Dirent[] = await readdir(folder, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) {
        if (++seen > MAX_ENTRIES) return;
        const path = join(folder, entry.name);
        const target = entry.isSymbolicLink() ? await real(path) : path;
        if (!allowed(target)) throw outside(source, relative(dir, path));
        if (
          depth < MAX_DEPTH &&
          (entry.isDirectory() ||
            (entry.isSymbolicLink() && (await stat(target).catch(() => undefined))?.isDirectory()))
        )
          await visit(target, depth + 1);
      }
    };
    await visit(dir, 1);
  }
}

function outside(source: string, inner?: string): NucleusError {
  return new NucleusError(
    403,
    'model_source_not_allowed',
    inner === undefined
      ? `model source ${source} is outside the folders models may be loaded from (allowedModelRoots), symlinks resolved; place it under one of them, or ask an operator to`
      : `model source ${source} holds ${inner}, a symlink that leads outside the folders models may be loaded from (allowedModelRoots); refusing to load it`,
  );
}
