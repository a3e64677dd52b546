import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, readlink, realpath, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import type { ListFileEntry } from '@huggingface/hub';
import {
  NucleusError,
  sha256File,
  type CachedModel,
  type ModelSourceProvider,
  type SourceFetchOptions,
} from '@nucleus/sdk';
import { downloadBlob, httpError, unreachable } from './blob-download.js';
import { globToRegExp, isGlob, parseHubUri, type HubUri } from './hub-uri.js';

// The Hub client is loaded at the first hf:// fetch or cache listing, not with the plugin: loading it costs a server
// that never names the Hub ~10 MB of resident memory (its bundle, two WebAssembly modules and a 5 MiB buffer it
// allocates up front).
const hubClient = () => import('@huggingface/hub');
import type { SourcePolicy } from './source-policy.js';

/** Where and how the Hub is reached. */
export interface HubSourceOptions {
  /** The Hub or a mirror (`HF_ENDPOINT`). */
  endpoint: string;
  token?: string;
  /** The Hugging Face cache (`HF_HUB_CACHE`, `HF_HOME/hub`). */
  cacheDir: string;
  /** Never ask the network; serve from the cache (`HF_HUB_OFFLINE=1`). */
  offline: boolean;
  policy: SourcePolicy;
}

// The files a model is loaded from, by layout: a checkpoint's weights, config and tokenizer, not its README or
// training logs. A repository holding several GGUF files must name one.
const CHECKPOINT = [
  /^[^/]*\.safetensors$/,
  /^[^/]*\.safetensors\.index\.json$/,
  /^(config|generation_config|tokenizer|tokenizer_config|special_tokens_map|preprocessor_config)\.json$/,
  /^tokenizer\.model$/,
  /^chat_template\.(jinja|json)$/,
];
const ONNX_EXPORT = [/\.onnx$/, /\.onnx_data$/, /^[^/]*\.json$/, /^tokenizer\.model$/, /^chat_template\.jinja$/];
const COMMIT = /^[0-9a-f]{40}$/;

/**
 * `hf://ORG/REPO[@REVISION][/FILE-OR-GLOB]` sources: the Hub API (through `@huggingface/hub`) says which commit a
 * revision is and what its files are; the files land in the Hugging Face cache layout (`models--ORG--REPO/blobs`,
 * `snapshots/COMMIT/…` links, `refs/REVISION`), so files other tools fetched are used as they are. A file already in
 * the cache for the revision is used without asking the network.
 */
export class HubSource implements ModelSourceProvider {
  readonly schemes = ['hf'];
  readonly accepts = 'Hugging Face Hub models, hf://ORG/REPO[@REVISION][/FILE]';

  constructor(private readonly options: HubSourceOptions) {}

  async fetch(source: string, fetchOptions: SourceFetchOptions): Promise<string> {
    const uri = parseHubUri(source);
    this.options.policy.checkOrg(uri.org, source);
    this.options.policy.checkUrl(this.options.endpoint, source);
    const { getRepoFolderName } = await hubClient();
    const folder = join(this.options.cacheDir, getRepoFolderName({ type: 'model', name: uri.repo }));
    if (fetchOptions.sha256 !== undefined && (uri.path === undefined || isGlob(uri.path))) {
      throw new NucleusError(
        400,
        'model_sha256_mismatch',
        `${source} names several files; a sha256 pin applies to one file: name it (hf://${uri.repo}/FILE)`,
      );
    }
    const cached = await this.#cached(uri, folder);
    if (cached !== undefined && (this.options.offline || (uri.path !== undefined && !isGlob(uri.path)))) {
      return this.#pinned(cached, source, fetchOptions.sha256);
    }
    if (this.options.offline) throw offlineMiss(source, folder);
    let commit: string;
    let files: ListFileEntry[];
    try {
      commit = await this.#commit(uri);
      files = await this.#files(uri, commit);
    } catch (err) {
      if (err instanceof NucleusError && err.code === 'model_source_unavailable' && cached !== undefined) {
        fetchOptions.logger.warn({ source, err: err.message }, 'the Hub cannot be reached; using the cached copy');
        return this.#pinned(cached, source, fetchOptions.sha256);
      }
      if (err instanceof NucleusError && err.code === 'model_source_unavailable') {
        throw new NucleusError(
          503,
          'model_source_offline',
          `${source} is not in the cache (${folder}) and the Hub cannot be reached: ${err.message}. Run \`nucleus pull ${source}\` where it can be reached`,
        );
      }
      throw err;
    }
    const wanted = select(uri, files, source);
    const snapshot = join(folder, 'snapshots', commit);
    for (const file of wanted) {
      const oid = file.lfs?.oid ?? file.oid;
      if (oid === undefined)
        throw new NucleusError(502, 'model_source_unavailable', `the Hub gave no oid for ${file.path}`);
      const blob = join(folder, 'blobs', oid);
      const pin = wanted.length === 1 ? fetchOptions.sha256?.toLowerCase() : undefined;
      if (pin !== undefined && file.lfs !== undefined && file.lfs.oid !== pin) {
        throw new NucleusError(
          400,
          'model_sha256_mismatch',
          `${source} has sha256 ${file.lfs.oid} on the Hub, not the pinned ${pin}; refusing to download it (check models[].sha256)`,
        );
      }
      const url = `${this.options.endpoint}/${uri.repo}/resolve/${commit}/${file.path.split('/').map(encodeURIComponent).join('/')}`;
      await downloadBlob({
        url,
        target: blob,
        headers: this.#auth(),
        expected: {
          size: file.lfs?.size ?? file.size,
          ...(file.lfs ? { sha256: file.lfs.oid } : { gitSha1: oid }),
          ...(pin !== undefined && { sha256: pin }),
        },
        name: `hf://${uri.repo}/${file.path}`,
        progress: fetchOptions.progress(),
        ...(fetchOptions.signal && { signal: fetchOptions.signal }),
      });
      await link(blob, join(snapshot, file.path));
    }
    if (uri.revision !== commit) {
      await mkdir(join(folder, 'refs'), { recursive: true });
      await writeFile(join(folder, 'refs', uri.revision), commit);
    }
    return wanted.length === 1 && (uri.path !== undefined || wanted[0]!.path.endsWith('.gguf'))
      ? join(snapshot, wanted[0]!.path)
      : snapshot;
  }

  async cached(): Promise<CachedModel[]> {
    if (!existsSync(this.options.cacheDir)) return [];
    const { scanCacheDir } = await hubClient();
    const info = await scanCacheDir(this.options.cacheDir);
    return info.repos
      .filter((r) => r.id.type === 'model')
      .map((r) => ({
        source: `hf://${r.id.name}`,
        path: r.path,
        sizeBytes: r.size,
        files: r.filesCount,
        revisions: r.revisions.flatMap((v) => (v.refs.length ? v.refs : [v.commitOid.slice(0, 12)])),
        modified: r.lastModifiedAt.toISOString(),
      }));
  }

  async remove(source: string): Promise<CachedModel | undefined> {
    const { repo } = parseHubUri(source.startsWith('hf://') ? source : `hf://${source}`);
    const listed = (await this.cached()).find((m) => m.source === `hf://${repo}`);
    if (listed) await rm(listed.path, { recursive: true, force: true });
    return listed;
  }

  #auth(): Record<string, string> {
    return this.options.token ? { Authorization: `Bearer ${this.options.token}` } : {};
  }

  #hub() {
    return {
      hubUrl: this.options.endpoint,
      ...(this.options.token && { accessToken: this.options.token }),
    };
  }

  // The commit a revision names now (a commit names itself).
  async #commit(uri: HubUri): Promise<string> {
    if (COMMIT.test(uri.revision)) return uri.revision;
    const { modelInfo } = await hubClient();
    const info = await this.#api(uri, () =>
      modelInfo({ name: uri.repo, revision: uri.revision, additionalFields: ['sha'], ...this.#hub() }),
    );
    const sha = (info as { sha?: string }).sha;
    if (!sha || !COMMIT.test(sha)) {
      throw new NucleusError(
        502,
        'model_source_unavailable',
        `the Hub gave no commit for hf://${uri.repo}@${uri.revision}`,
      );
    }
    return sha;
  }

  async #files(uri: HubUri, commit: string): Promise<ListFileEntry[]> {
    const { listFiles, pathsInfo } = await hubClient();
    if (uri.path !== undefined && !isGlob(uri.path)) {
      const found = await this.#api(uri, () =>
        pathsInfo({ repo: uri.repo, paths: [uri.path!], revision: commit, expand: false, ...this.#hub() }),
      );
      const files = found.filter((f) => f.type === 'file') as ListFileEntry[];
      // Not there: the whole listing, so that the error can say what there is.
      if (files.length > 0) return files;
    }
    return this.#api(uri, async () => {
      const all: ListFileEntry[] = [];
      for await (const f of listFiles({ repo: uri.repo, revision: commit, recursive: true, ...this.#hub() })) {
        if (f.type === 'file') all.push(f);
      }
      return all;
    });
  }

  // A Hub API call, its failures as errors a user can act on.
  async #api<T>(uri: HubUri, call: () => Promise<T>): Promise<T> {
    const name = `hf://${uri.repo}@${uri.revision}`;
    const { HubApiError } = await hubClient();
    try {
      return await call();
    } catch (err) {
      if (err instanceof HubApiError) throw httpError(name, err.url, err.statusCode);
      if (err instanceof NucleusError) throw err;
      throw unreachable(name, this.options.endpoint, err);
    }
  }

  // What the cache holds for the source, without asking the network: the file, or the snapshot folder.
  async #cached(uri: HubUri, folder: string): Promise<string | undefined> {
    const commit = COMMIT.test(uri.revision)
      ? uri.revision
      : (await readFile(join(folder, 'refs', uri.revision), 'utf8').catch(() => undefined))?.trim();
    if (!commit) return undefined;
    const snapshot = join(folder, 'snapshots', commit);
    if (uri.path !== undefined && !isGlob(uri.path)) {
      const file = join(snapshot, uri.path);
      return (await stat(file).catch(() => undefined))?.isFile() ? file : undefined;
    }
    const files = await listSnapshot(snapshot);
    if (files.length === 0) return undefined;
    if (uri.path !== undefined) {
      const re = globToRegExp(uri.path);
      const matched = files.filter((f) => re.test(f));
      return matched.length === 1 ? join(snapshot, matched[0]!) : matched.length ? snapshot : undefined;
    }
    const ggufs = files.filter((f) => f.endsWith('.gguf'));
    return ggufs.length === 1 && !files.some((f) => f.endsWith('.safetensors')) ? join(snapshot, ggufs[0]!) : snapshot;
  }

  // A cached file checked against a pin: a Hub LFS blob is named by its sha256, anything else is hashed.
  async #pinned(path: string, source: string, sha256: string | undefined): Promise<string> {
    if (sha256 === undefined) return path;
    const blob = basename(await realpath(path));
    const actual = /^[0-9a-f]{64}$/.test(blob) ? blob : await sha256File(path);
    if (actual !== sha256.toLowerCase()) {
      throw new NucleusError(
        400,
        'model_sha256_mismatch',
        `${source} in the cache has sha256 ${actual}, not the pinned ${sha256.toLowerCase()}; refusing to load it (check models[].sha256)`,
      );
    }
    return path;
  }
}

/** The files of a repository a source asks for; an ambiguous or empty choice is a 400 listing what there is. */
function select(uri: HubUri, files: readonly ListFileEntry[], source: string): ListFileEntry[] {
  const list = (fs: readonly ListFileEntry[]) => fs.map((f) => f.path).join(', ');
  if (uri.path !== undefined) {
    const re = isGlob(uri.path) ? globToRegExp(uri.path) : undefined;
    const matched = files.filter((f) => (re ? re.test(f.path) : f.path === uri.path));
    if (matched.length === 0) {
      throw new NucleusError(
        400,
        'model_source_not_found',
        `hf://${uri.repo}@${uri.revision} has no file ${re ? 'matching ' : ''}${uri.path}; it has ${list(files) || 'no files'}`,
      );
    }
    return matched;
  }
  const ggufs = files.filter((f) => f.path.endsWith('.gguf'));
  const checkpoint = files.filter((f) => CHECKPOINT.some((re) => re.test(f.path)));
  if (checkpoint.some((f) => f.path.endsWith('.safetensors'))) return checkpoint;
  if (ggufs.length === 1) return ggufs;
  if (ggufs.length > 1) {
    throw new NucleusError(
      400,
      'ambiguous_model_source',
      `${source} holds several GGUF files; name one, e.g. ${source.replace(/\/$/, '')}/${ggufs[0]!.path}. Its GGUF files: ${list(ggufs)}`,
    );
  }
  const onnx = files.filter((f) => ONNX_EXPORT.some((re) => re.test(f.path)));
  if (onnx.some((f) => f.path.endsWith('.onnx'))) return onnx;
  throw new NucleusError(
    400,
    'unsupported_model_source',
    `${source} holds no model files Nucleus loads (safetensors, GGUF or ONNX); it has ${list(files) || 'no files'}`,
  );
}

// A snapshot entry is a relative link to its blob, as huggingface_hub writes it.
async function link(blob: string, entry: string): Promise<void> {
  await mkdir(dirname(entry), { recursive: true });
  const target = relative(dirname(entry), blob);
  const current = await readlink(entry).catch(() => undefined);
  if (current === target) return;
  if (current !== undefined || existsSync(entry)) await rm(entry, { force: true });
  await symlink(target, entry).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
}

async function listSnapshot(dir: string, prefix = ''): Promise<string[]> {
  const entries = await readdir(join(dir, prefix), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const e of entries) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...(await listSnapshot(dir, rel)));
    else out.push(rel);
  }
  return out;
}

function offlineMiss(source: string, folder: string): NucleusError {
  return new NucleusError(
    503,
    'model_source_offline',
    `${source} is not in the cache (${folder}) and the server is offline (HF_HUB_OFFLINE): run \`nucleus pull ${source}\` where the Hub can be reached, or unset HF_HUB_OFFLINE`,
  );
}
