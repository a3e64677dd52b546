import { NucleusError } from '@nucleus/sdk';

/** An `hf://ORG/REPO[@REVISION][/FILE-OR-GLOB]` source, parsed. */
export interface HubUri {
  /** `ORG/REPO`. */
  readonly repo: string;
  readonly org: string;
  /** A branch, tag or commit; `main` when the source names none. */
  readonly revision: string;
  /** A file in the repository, or a glob (`*.gguf`, `onnx/*`); undefined for the whole model. */
  readonly path?: string;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/** Parses an `hf://` source; a malformed one is a 400 showing the expected shape. */
export function parseHubUri(source: string): HubUri {
  const bad = (why: string) =>
    new NucleusError(
      400,
      'invalid_model_source',
      `${source} is not a Hub source (${why}): write hf://ORG/REPO, hf://ORG/REPO@REVISION or hf://ORG/REPO[@REVISION]/FILE`,
    );
  const rest = source.replace(/^hf:\/\//i, '');
  const [org, repoRev, ...pathParts] = rest.split('/');
  if (!org || !repoRev) throw bad('no ORG/REPO');
  const at = repoRev.indexOf('@');
  const name = at < 0 ? repoRev : repoRev.slice(0, at);
  const revision = at < 0 ? 'main' : repoRev.slice(at + 1);
  if (!NAME.test(org) || !NAME.test(name)) throw bad(`'${org}/${name}' is not a repository name`);
  if (revision === '' || !/^[A-Za-z0-9._-]+$/.test(revision)) throw bad(`'${revision}' is not a revision`);
  const path = pathParts.join('/');
  if (pathParts.some((p) => p === '..' || p === '.')) throw bad('a file path may not climb out of the repository');
  return { repo: `${org}/${name}`, org, revision, ...(path !== '' && { path }) };
}

/** A glob (`*`, `**`, `?`) as a regular expression over repository paths. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether a repository path is a glob rather than one file. */
export function isGlob(path: string): boolean {
  return /[*?]/.test(path);
}
