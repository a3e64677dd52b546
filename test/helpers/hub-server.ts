import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One file of a repository the test Hub serves. */
export interface HubFile {
  path: string;
  data: Buffer;
  /** Stored with Git LFS (the Hub does so for large files): its oid is the SHA-256, its download redirects. */
  lfs?: boolean;
}

/** A repository the test Hub serves at one commit. */
export interface HubRepo {
  /** `ORG/REPO`. */
  name: string;
  files: HubFile[];
  /** Only with `Authorization: Bearer <token>`; 401 otherwise. */
  token?: string;
  /** Branches and tags, each naming the commit; `main` always does. */
  refs?: string[];
}

/** One request the test Hub received. */
export interface HubRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

/** How the next download of a file misbehaves. */
export type HubFault =
  /** The connection is cut after this many bytes of the body. */
  | { kind: 'cut'; afterBytes: number }
  /** Other bytes than the listing's hash describe are sent. */
  | { kind: 'corrupt' }
  /** An HTML page instead of the file. */
  | { kind: 'html' };

/**
 * A Hugging Face Hub on 127.0.0.1, serving the paths and headers `@huggingface/hub` and huggingface_hub use: model
 * info at `/api/models/ORG/REPO/revision/REV` (with `sha` and `siblings`), `paths-info` and `tree` listings with
 * LFS oids and sizes, and `/ORG/REPO/resolve/REV/FILE` answering small files directly (`ETag`, `X-Repo-Commit`) and
 * LFS files with a redirect to a CDN path (`X-Linked-Etag`, `X-Linked-Size`) that honours `Range`. It counts the
 * requests, and can cut, corrupt or replace a file's next download.
 */
export class HubServer {
  readonly requests: HubRequest[] = [];
  readonly #repos = new Map<string, { repo: HubRepo; commit: string }>();
  readonly #faults = new Map<string, HubFault>();
  readonly #server: Server;
  #url = '';
  /** Downloads (file bodies begun) by repository path, e.g. `org/repo/model.gguf`. */
  readonly downloads = new Map<string, number>();

  constructor(repos: HubRepo[]) {
    for (const repo of repos) {
      const commit = createHash('sha1')
        .update(`${repo.name}:${repo.files.map((f) => f.path).join(',')}`)
        .digest('hex');
      this.#repos.set(repo.name, { repo, commit });
    }
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
  }

  /** Listens on a free port of 127.0.0.1; returns the endpoint for `HF_ENDPOINT`. */
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this.#url;
  }

  async stop(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  /** The commit `main` of a repository names. */
  commit(repo: string): string {
    return this.#repos.get(repo)!.commit;
  }

  /** Makes the next download of `ORG/REPO/FILE` misbehave. */
  fault(file: string, fault: HubFault): void {
    this.#faults.set(file, fault);
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://hub');
    const path = decodeURIComponent(url.pathname);
    this.requests.push({
      method: req.method ?? 'GET',
      path,
      ...(req.headers.range && { range: req.headers.range }),
      ...(req.headers.authorization && { authorization: req.headers.authorization }),
    });
    const body = req.method === 'POST' ? await readBody(req) : '';
    let m = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|paths-info|tree)\/([^/]+)(?:\/(.*))?$/.exec(path);
    if (m) {
      const found = this.#repo(m[1]!, m[3]!, req, res);
      if (!found) return;
      const { repo, commit } = found;
      if (m[2] === 'revision') {
        return json(res, 200, {
          _id: `id-${repo.name}`,
          id: repo.name,
          sha: commit,
          private: repo.token !== undefined,
          lastModified: '2026-01-01T00:00:00.000Z',
          siblings: repo.files.map((f) => ({ rfilename: f.path })),
        });
      }
      const wanted = m[2] === 'paths-info' ? new Set((JSON.parse(body) as { paths: string[] }).paths) : undefined;
      return json(
        res,
        200,
        repo.files.filter((f) => wanted === undefined || wanted.has(f.path)).map((f) => entry(f)),
      );
    }
    m = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(path);
    if (m) {
      const found = this.#repo(m[1]!, m[2]!, req, res);
      if (!found) return;
      const file = found.repo.files.find((f) => f.path === m![3]);
      if (!file) return json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound' });
      const headers = { 'X-Repo-Commit': found.commit, ETag: `"${gitOid(file.data)}"` };
      if (file.lfs) {
        res.writeHead(302, {
          ...headers,
          'X-Linked-Etag': `"${sha256(file.data)}"`,
          'X-Linked-Size': String(file.data.length),
          Location: `${this.#url}/cdn/${found.repo.name}/${sha256(file.data)}/${file.path}`,
        });
        return void res.end();
      }
      return this.#send(req, res, `${found.repo.name}/${file.path}`, file.data, headers);
    }
    m = /^\/cdn\/([^/]+\/[^/]+)\/([0-9a-f]{64})\/(.+)$/.exec(path);
    if (m) {
      const file = this.#repos.get(m[1]!)?.repo.files.find((f) => f.path === m![3]);
      if (!file) return json(res, 404, { error: 'not found' });
      return this.#send(req, res, `${m[1]}/${file.path}`, file.data, { ETag: `"${m[2]}"` });
    }
    json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
  }

  // A repository a request may see at a revision, or the answer the Hub gives when it may not.
  #repo(name: string, revision: string, req: IncomingMessage, res: ServerResponse) {
    const found = this.#repos.get(name);
    if (!found) return void json(res, 404, { error: 'Repository not found' }, { 'X-Error-Code': 'RepoNotFound' });
    if (found.repo.token !== undefined && req.headers.authorization !== `Bearer ${found.repo.token}`) {
      return void json(res, 401, { error: 'Invalid username or password.' }, { 'X-Error-Code': 'RepoNotFound' });
    }
    const refs = ['main', ...(found.repo.refs ?? [])];
    if (!refs.includes(revision) && revision !== found.commit) {
      return void json(res, 404, { error: `Invalid rev id: ${revision}` }, { 'X-Error-Code': 'RevisionNotFound' });
    }
    return found;
  }

  // A file body, whole or from a `Range: bytes=N-`, misbehaving once when a fault is set for it.
  #send(req: IncomingMessage, res: ServerResponse, key: string, data: Buffer, headers: Record<string, string>): void {
    const fault = this.#faults.get(key);
    this.#faults.delete(key);
    if (fault?.kind === 'html') {
      res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
      return void res.end('<!doctype html><html><body>Sign in to continue</body></html>');
    }
    const body = fault?.kind === 'corrupt' ? Buffer.from(data).fill(0x5a, 0, Math.min(64, data.length)) : data;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= body.length && range) {
      res.writeHead(416, { 'Content-Range': `bytes */${body.length}` });
      return void res.end();
    }
    this.downloads.set(key, (this.downloads.get(key) ?? 0) + 1);
    const part = body.subarray(start);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'Content-Type': 'application/octet-stream',
      'Accept-Ranges': 'bytes',
      'Content-Length': String(part.length),
      ...(range && { 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` }),
    });
    if (req.method === 'HEAD') return void res.end();
    if (fault?.kind === 'cut') {
      res.write(part.subarray(0, fault.afterBytes), () => {
        // Let the bytes reach the client before the connection goes.
        setTimeout(() => res.socket?.destroy(), 50);
      });
      return;
    }
    res.end(part);
  }
}

/** A file's git blob oid, as the Hub lists it. */
export function gitOid(data: Buffer): string {
  return createHash('sha1').update(`blob ${data.length}\0`).update(data).digest('hex');
}

export function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** A file of the test Hub from a file on disk. */
export function hubFile(path: string, from: string, lfs = true): HubFile {
  return { path, data: readFileSync(from), lfs };
}

function entry(f: HubFile) {
  return {
    type: 'file',
    path: f.path,
    oid: gitOid(f.lfs ? Buffer.from(`lfs pointer ${sha256(f.data)}`) : f.data),
    size: f.lfs ? 134 : f.data.length,
    ...(f.lfs && { lfs: { oid: sha256(f.data), size: f.data.length, pointerSize: 134 } }),
  };
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return text;
}
