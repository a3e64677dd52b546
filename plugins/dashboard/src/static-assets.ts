import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** A file the dashboard serves, read and compressed once at activation. */
export interface Asset {
  readonly path: string;
  readonly type: string;
  readonly body: Buffer;
  readonly gzip: Buffer;
  readonly etag: string;
}

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The page's own modules, in `web/`, served under `/dashboard/app/`. */
const APP_FILES = [
  'app.js',
  'api.js',
  'chart.js',
  'format.js',
  'overview-view.js',
  'models-view.js',
  'traffic-split.js',
  'plugins-view.js',
  'config-form.js',
  'requests-view.js',
  'playground-view.js',
  'tensor-form.js',
  'sign-in-view.js',
  'style.css',
];

/** The libraries the page imports, from their packages' own ES module builds: served, never fetched from a CDN. */
const VENDOR: ReadonlyArray<{ path: string; pkg: string; file: string; specifier?: string }> = [
  { path: 'preact.mjs', pkg: 'preact', file: 'dist/preact.mjs', specifier: 'preact' },
  { path: 'preact-hooks.mjs', pkg: 'preact', file: 'hooks/dist/hooks.mjs', specifier: 'preact/hooks' },
  { path: 'htm.mjs', pkg: 'htm', file: 'dist/htm.mjs', specifier: 'htm' },
  { path: 'htm-preact.mjs', pkg: 'htm', file: 'preact/index.mjs', specifier: 'htm/preact' },
  { path: 'uplot.mjs', pkg: 'uplot', file: 'dist/uPlot.esm.js', specifier: 'uplot' },
  { path: 'uplot.css', pkg: 'uplot', file: 'dist/uPlot.min.css' },
];

const WEB_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'web');

function isPackage(dir: string, pkg: string): boolean {
  const file = join(dir, 'package.json');
  return existsSync(file) && (JSON.parse(readFileSync(file, 'utf8')) as { name?: string }).name === pkg;
}

// The package's folder, found from its main entry: not every package exports its package.json (htm does not).
function packageDir(pkg: string): string {
  const require = createRequire(import.meta.url);
  let dir = dirname(require.resolve(pkg));
  while (!isPackage(dir, pkg)) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find the folder of package ${pkg}`);
    dir = up;
  }
  return dir;
}

function asset(path: string, body: Buffer): Asset {
  return {
    path,
    type: TYPES[extname(path)] ?? 'application/octet-stream',
    body,
    gzip: gzipSync(body, { level: 9 }),
    etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
  };
}

/**
 * Everything the dashboard page is made of, by URL path: the HTML shell (with the import map that points bare
 * specifiers at the vendored modules), the page's modules and the vendored libraries. Read once, so a request costs
 * no disk access; a reload of the plugin reads them again.
 */
export class StaticAssets {
  private constructor(
    private readonly byPath: ReadonlyMap<string, Asset>,
    /** The `Content-Security-Policy` of the HTML shell: its one inline script (the import map) by hash. */
    readonly contentSecurityPolicy: string,
  ) {}

  static async load(): Promise<StaticAssets> {
    const byPath = new Map<string, Asset>();
    const imports: Record<string, string> = {};
    for (const v of VENDOR) {
      const path = `/dashboard/vendor/${v.path}`;
      byPath.set(path, asset(path, await readFile(join(packageDir(v.pkg), v.file))));
      if (v.specifier) imports[v.specifier] = path;
    }
    for (const name of APP_FILES) {
      const path = `/dashboard/app/${name}`;
      byPath.set(path, asset(path, await readFile(join(WEB_DIR, name))));
    }
    const importMap = JSON.stringify({ imports });
    const hash = createHash('sha256').update(importMap).digest('base64');
    const template = await readFile(join(WEB_DIR, 'index.html'), 'utf8');
    const placeholder = '{ "imports": {} }';
    if (!template.includes(placeholder)) throw new Error(`web/index.html has no import map placeholder ${placeholder}`);
    const shell = template.replace(placeholder, importMap);
    byPath.set('/dashboard', asset('/dashboard/index.html', Buffer.from(shell)));
    const csp = [
      "default-src 'self'",
      `script-src 'self' 'sha256-${hash}'`,
      // uPlot and the views set element styles from script.
      "style-src 'self' 'unsafe-inline'",
      "connect-src 'self'",
      "img-src 'self' data:",
      "frame-ancestors 'none'",
      "base-uri 'none'",
      "form-action 'self'",
    ].join('; ');
    return new StaticAssets(byPath, csp);
  }

  get(path: string): Asset | undefined {
    return this.byPath.get(path);
  }

  /** Every asset path except the shell, for route registration. */
  paths(): string[] {
    return [...this.byPath.keys()].filter((p) => p !== '/dashboard');
  }
}
