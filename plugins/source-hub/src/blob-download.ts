import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import { NucleusError, type Progress } from '@nucleus/sdk';
import lockfile from 'proper-lockfile';

/** What a downloaded file must be. */
export interface ExpectedBlob {
  /** Hex SHA-256 (a Hub LFS oid, or a pin); the download is refused when the bytes differ. */
  sha256?: string;
  /** Hex git blob SHA-1 (a small Hub file's oid). */
  gitSha1?: string;
  size?: number;
}

/** One file to download into `target`. */
export interface BlobDownload {
  url: string;
  /** The file written, atomically: it exists only once complete and verified. */
  target: string;
  headers?: Record<string, string>;
  expected: ExpectedBlob;
  /** The source as the user named it, for messages. */
  name: string;
  progress: Progress;
  signal?: AbortSignal;
}

// Downloads of one target already running in this process: a second request for it waits for the first.
const running = new Map<string, Promise<void>>();

/**
 * Downloads a file to `target` once, across requests and processes. The bytes go to `target.incomplete` (the
 * Hugging Face cache's name for a partial download), which a later attempt resumes with an HTTP Range request; the
 * whole file is hashed and checked against `expected` before it is renamed into place. A lock beside the target
 * (`target.lock`, refreshed while held and taken over once stale) makes a second process wait and then find the file.
 */
export function downloadBlob(download: BlobDownload): Promise<void> {
  let pending = running.get(download.target);
  if (!pending) {
    pending = locked(download).finally(() => running.delete(download.target));
    running.set(download.target, pending);
  }
  return pending;
}

async function locked(download: BlobDownload): Promise<void> {
  const { target } = download;
  if (await exists(target)) return;
  await mkdir(dirname(target), { recursive: true });
  const release = await lockfile.lock(target, {
    realpath: false,
    lockfilePath: `${target}.lock`,
    // A holder that died leaves a lock nobody refreshes: taken over after `stale` ms.
    stale: 10_000,
    update: 2_000,
    retries: { retries: 1_000_000, factor: 1.2, minTimeout: 50, maxTimeout: 500 },
  });
  try {
    // Another process may have finished it while this one waited for the lock.
    if (await exists(target)) return;
    await fetchInto(download);
  } finally {
    await release().catch(() => undefined);
  }
}

async function fetchInto(download: BlobDownload): Promise<void> {
  const { url, target, expected, name, progress, signal } = download;
  const partial = `${target}.incomplete`;
  const sha256 = createHash('sha256');
  const sha1 = expected.gitSha1 === undefined ? undefined : createHash('sha1');
  let offset = (await stat(partial).catch(() => undefined))?.size ?? 0;
  if (expected.size !== undefined && offset > expected.size) {
    await rm(partial, { force: true });
    offset = 0;
  }
  const headers: Record<string, string> = { ...download.headers };
  if (offset > 0) headers.Range = `bytes=${offset}-`;
  let res: Response;
  try {
    res = await fetch(url, { headers, redirect: 'follow', ...(signal && { signal }) });
  } catch (err) {
    throw unreachable(name, url, err);
  }
  if (res.status === 416 && expected.size !== undefined && offset === expected.size) {
    // The partial already holds every byte: only the check is left.
    await res.body?.cancel();
  } else if (!res.ok) {
    await res.body?.cancel();
    throw httpError(name, url, res.status);
  } else {
    refuseHtml(name, url, res);
    if (res.status !== 206) offset = 0;
  }
  const total = expected.size ?? (Number(res.headers.get('content-length') ?? 0) + offset || 0);
  sha1?.update(`blob ${expected.size ?? 0}\0`);
  // The bytes already on disk count towards the hash before new ones are appended.
  if (offset > 0) await hashFile(partial, [sha256, ...(sha1 ? [sha1] : [])]);
  progress.start(total, `downloading ${name}`, 'bytes');
  try {
    if (res.status === 200 || res.status === 206) {
      progress.advance(offset);
      const out = createWriteStream(partial, { flags: offset > 0 ? 'a' : 'w' });
      try {
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          sha256.update(chunk);
          sha1?.update(chunk);
          if (!out.write(chunk)) await new Promise<void>((r) => out.once('drain', () => r()));
          progress.advance(chunk.byteLength);
        }
      } catch (err) {
        throw interrupted(name, url, err);
      } finally {
        await new Promise<void>((resolve, reject) => out.end((e?: Error | null) => (e ? reject(e) : resolve())));
      }
    }
  } finally {
    progress.done();
  }
  const size = (await stat(partial)).size;
  if (expected.size !== undefined && size !== expected.size) {
    throw new NucleusError(
      502,
      'model_source_incomplete',
      `downloading ${name} stopped at ${size} of ${expected.size} bytes; try again, the download resumes where it stopped`,
    );
  }
  const sha = sha256.digest('hex');
  const gitSha = sha1?.digest('hex');
  const wrong =
    expected.sha256 !== undefined && sha !== expected.sha256.toLowerCase()
      ? `sha256 ${sha}, not ${expected.sha256.toLowerCase()}`
      : expected.gitSha1 !== undefined && gitSha !== expected.gitSha1
        ? `git oid ${gitSha}, not ${expected.gitSha1}`
        : undefined;
  if (wrong) {
    // A wrong file must not be resumed either: the next attempt starts over.
    await rm(partial, { force: true });
    throw new NucleusError(
      400,
      'model_sha256_mismatch',
      `${name} downloaded from ${url} has ${wrong}; refusing to use it (the file changed, or the pin or the mirror is wrong)`,
    );
  }
  await rename(partial, download.target);
}

async function hashFile(path: string, hashes: Hash[]): Promise<void> {
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) {
    for (const h of hashes) h.update(chunk as Buffer);
  }
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

// A web page where a file was expected: a `/blob/` link instead of `/resolve/`, a login page, a proxy's error page.
function refuseHtml(name: string, url: string, res: Response): void {
  const type = res.headers.get('content-type') ?? '';
  if (!/^text\/html\b/i.test(type)) return;
  void res.body?.cancel();
  throw new NucleusError(
    400,
    'model_source_not_a_file',
    `${url} answered with an HTML page, not the model file ${name}: use a direct download link (on the Hub, /resolve/ rather than /blob/)`,
  );
}

/** The HTTP status a source answered with, as an error a user can act on. */
export function httpError(name: string, url: string, status: number): NucleusError {
  if (status === 401 || status === 403) {
    return new NucleusError(
      400,
      'model_source_unauthorized',
      `${url} answered ${status} for ${name}: the repository is private or gated; set HF_TOKEN (or plugin.source-hub.token) to a token that may read it`,
    );
  }
  if (status === 404) {
    return new NucleusError(
      400,
      'model_source_not_found',
      `${name} was not found (${url} answered 404); check the organisation, repository, revision and file name`,
    );
  }
  return new NucleusError(502, 'model_source_unavailable', `${url} answered ${status} for ${name}; try again later`);
}

// Node's codes for a certificate chain the host's trust store does not accept.
const TLS_TRUST_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The network failing under a request, as an error that says so. */
export function unreachable(name: string, url: string, err: unknown): NucleusError {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  const host = new URL(url).host;
  if (cause?.code !== undefined && TLS_TRUST_ERRORS.has(cause.code)) {
    return new NucleusError(
      502,
      'model_source_untrusted',
      `the TLS certificate of ${host} is not trusted (${cause.code}) for ${name}; if it is signed by a private certificate authority, give that authority's certificate to the server with NODE_EXTRA_CA_CERTS`,
    );
  }
  return new NucleusError(
    502,
    'model_source_unavailable',
    `cannot reach ${host} for ${name} (${cause?.code ?? cause?.message ?? (err as Error).message}); check the network, or run offline from the cache (HF_HUB_OFFLINE=1)`,
  );
}

function interrupted(name: string, url: string, err: unknown): NucleusError {
  if ((err as Error).name === 'AbortError') return err as NucleusError;
  return new NucleusError(
    502,
    'model_source_interrupted',
    `downloading ${name} from ${new URL(url).host} was interrupted (${(err as Error).message}); try again: the download resumes where it stopped`,
  );
}
