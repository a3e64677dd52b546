import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { NucleusError, sha256File, type ModelSourceProvider, type SourceFetchOptions } from '@nucleus/sdk';
import { downloadBlob } from './blob-download.js';
import type { SourcePolicy } from './source-policy.js';

/**
 * `https://…/model.gguf` (and `http://` to this machine): one file, downloaded once into
 * `<cache>/urls/<hash of the URL>/<file name>`, resumed after an interruption and checked against a pin when given.
 */
export class UrlSource implements ModelSourceProvider {
  readonly schemes = ['https', 'http'];
  readonly accepts = 'one model file by URL, https://HOST/PATH/FILE (http only to this machine)';

  constructor(
    private readonly cacheDir: string,
    private readonly policy: SourcePolicy,
  ) {}

  async fetch(source: string, options: SourceFetchOptions): Promise<string> {
    const url = this.policy.checkUrl(source, source);
    const name = decodeURIComponent(basename(url.pathname));
    if (name === '' || name === '/') {
      throw new NucleusError(400, 'invalid_model_source', `${source} names no file; give the URL of the model file`);
    }
    // The URL without its query names the cache entry; a signed query string changes per request.
    const key = createHash('sha256').update(`${url.origin}${url.pathname}`).digest('hex').slice(0, 16);
    const target = join(this.cacheDir, key, name);
    const pin = options.sha256?.toLowerCase();
    if (existsSync(target)) {
      const actual = pin === undefined ? pin : await sha256File(target);
      if (actual !== pin) {
        throw new NucleusError(
          400,
          'model_sha256_mismatch',
          `${source} in the cache has sha256 ${actual}, not the pinned ${pin}; refusing to load it (check models[].sha256)`,
        );
      }
      return target;
    }
    await downloadBlob({
      url: source,
      target,
      expected: pin === undefined ? {} : { sha256: pin },
      name: source,
      progress: options.progress(),
      ...(options.signal && { signal: options.signal }),
    });
    return target;
  }
}
