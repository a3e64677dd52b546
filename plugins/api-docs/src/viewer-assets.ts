import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { notFound, type RouteContext } from '@nucleus/sdk';

/** One file the explorer page loads, read once and kept with its gzip. */
interface Asset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

const require = createRequire(import.meta.url);
const SWAGGER_UI = dirname(require.resolve('swagger-ui-dist/package.json'));
const SWAGGER_UI_VERSION = (require('swagger-ui-dist/package.json') as { version: string }).version;
const OWN = fileURLToPath(new URL('../assets/', import.meta.url));

// Only these names are served: the viewer's bundle and stylesheet, our page and its start-up script.
const FILES: Record<string, { dir: string; type: string }> = {
  'swagger-ui-bundle.js': { dir: SWAGGER_UI, type: 'text/javascript; charset=utf-8' },
  'swagger-ui.css': { dir: SWAGGER_UI, type: 'text/css; charset=utf-8' },
  'favicon-32x32.png': { dir: SWAGGER_UI, type: 'image/png' },
  'index.html': { dir: OWN, type: 'text/html; charset=utf-8' },
  'explorer.js': { dir: OWN, type: 'text/javascript; charset=utf-8' },
  'explorer.css': { dir: OWN, type: 'text/css; charset=utf-8' },
};

/**
 * The explorer's static files, served from the installed `swagger-ui-dist` and this plugin's `assets/`: no CDN, so the
 * page works offline. Files are read on first use and kept gzipped; the viewer's own files are cached by the browser
 * for a day (their ETag carries the viewer's version), the page and its script are revalidated each time.
 */
export class ViewerAssets {
  private readonly cache = new Map<string, Asset>();

  /** Answers a request for `name` (304 when the browser's copy is current); 404 for a name that is not served. */
  serve(ctx: RouteContext, name: string): void {
    const asset = this.asset(name);
    const ours = FILES[name]!.dir === OWN;
    ctx.set('cache-control', ours ? 'no-cache' : 'public, max-age=86400');
    ctx.set('etag', asset.etag);
    ctx.set('vary', 'Accept-Encoding');
    ctx.set('x-content-type-options', 'nosniff');
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.type = asset.type;
    if (ctx.acceptsEncodings('gzip', 'identity') === 'gzip') {
      ctx.set('content-encoding', 'gzip');
      ctx.body = asset.gzip;
    } else ctx.body = asset.body;
  }

  private asset(name: string): Asset {
    const cached = this.cache.get(name);
    if (cached) return cached;
    const file = Object.hasOwn(FILES, name) ? FILES[name] : undefined;
    if (!file) {
      throw notFound(
        'asset_not_found',
        `no explorer file "${name}"; the explorer is at /docs and serves ${Object.keys(FILES).join(', ')}`,
      );
    }
    const body = readFileSync(join(file.dir, name));
    const tag =
      file.dir === OWN ? createHash('sha256').update(body).digest('base64url').slice(0, 16) : SWAGGER_UI_VERSION;
    const asset = { type: file.type, body, gzip: gzipSync(body), etag: `"${name}-${tag}"` };
    this.cache.set(name, asset);
    return asset;
  }
}
