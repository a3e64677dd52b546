import { Command } from 'commander';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { resolve } from 'node:path';
import { scaffoldPlugin } from '@nucleus/sdk/scaffold';
import type { PluginInfo } from '../kernel/plugin-host.js';
import { Kernel } from '../kernel/kernel.js';
import { validatePluginDir } from '../kernel/plugin-validation.js';
import { setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { ExitCode, UsageError } from './exit-codes.js';
import { formatTable } from './format-table.js';

interface ListOptions extends ConfigOptions {
  json?: boolean;
  url?: string;
  key?: string;
}

async function fetchPlugins(url: string, key: string | undefined): Promise<PluginInfo[]> {
  let endpoint: URL;
  try {
    endpoint = new URL('/admin/plugins', url);
  } catch {
    endpoint = new URL('invalid:');
  }
  if (endpoint.protocol !== 'http:' && endpoint.protocol !== 'https:') {
    throw new UsageError(
      `--url ${url} is not an http(s) URL; pass the server's address, e.g. --url http://127.0.0.1:8080`,
    );
  }
  let res: { status: number; text: string };
  try {
    res = await httpGet(endpoint, key ? { authorization: `Bearer ${key}` } : {}, 10_000);
  } catch (err) {
    throw new Error(
      `cannot reach a Nucleus server at ${url}: ${requestCause(err, endpoint)}; check that \`nucleus serve\` runs there and that --url has its host and port (the server prints them at start)`,
    );
  }
  const ok = res.status >= 200 && res.status < 300;
  let body: { plugins?: PluginInfo[]; error?: { message: string } };
  try {
    body = JSON.parse(res.text) as typeof body;
  } catch {
    throw new Error(
      `${url} answered ${res.status} with something that is not JSON; is it a Nucleus server? (GET ${endpoint.href} should list plugins)`,
    );
  }
  if (res.status === 401 || res.status === 403) {
    throw new Error(
      `${url} answered ${res.status}: ${body.error?.message ?? 'not allowed'} (pass an admin key with --key or NUCLEUS_ADMIN_KEY)`,
    );
  }
  if (!ok) throw new Error(`${url} answered ${res.status}: ${body.error?.message ?? 'no message'}`);
  return body.plugins ?? [];
}

/**
 * A GET with node:http rather than fetch: fetch hides the cause behind "fetch failed" and refuses ports browsers
 * block (1, 7, 9 …), where a user deserves "connection refused".
 */
function httpGet(
  url: URL,
  headers: Record<string, string>,
  timeoutMs: number,
): Promise<{ status: number; text: string }> {
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { headers, timeout: timeoutMs }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      res.on('error', reject);
    });
    req.on('timeout', () =>
      req.destroy(Object.assign(new Error(`no answer within ${timeoutMs / 1000} s`), { code: 'ETIMEDOUT' })),
    );
    req.on('error', reject);
    req.end();
  });
}

function requestCause(err: unknown, endpoint: URL): string {
  const e = err as NodeJS.ErrnoException;
  const port = endpoint.port || (endpoint.protocol === 'https:' ? '443' : '80');
  switch (e.code) {
    case 'ECONNREFUSED':
      return `connection refused (nothing listens on ${endpoint.hostname}:${port})`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `the host name ${endpoint.hostname} does not resolve`;
    case 'ECONNRESET':
      return 'the connection was reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `${endpoint.hostname} cannot be reached from this machine`;
    default:
      return e.message;
  }
}

function printPlugins(plugins: PluginInfo[], json: boolean | undefined): void {
  if (json) return void process.stdout.write(`${JSON.stringify(plugins, null, 2)}\n`);
  const rows = plugins.map((p) => [p.id, p.version, p.state, p.provides.join(', ') || '-', p.error ?? '']);
  process.stdout.write(`${formatTable(['ID', 'VERSION', 'STATE', 'PROVIDES', 'ERROR'], rows)}\n`);
}

/** `nucleus plugins …`: list and validate plugins. */
export function pluginsCommand(): Command {
  const plugins = new Command('plugins').description('list and validate plugins');
  withConfigOptions(plugins.command('list'))
    .description('list discovered plugins with version, state and what they provide (from a running server with --url)')
    .option('--json', 'print JSON')
    .option('--url <url>', 'ask a running server (its admin API) for live states')
    .option('--key <key>', 'admin key for --url (default: NUCLEUS_ADMIN_KEY)')
    .action(async (opts: ListOptions) => {
      if (opts.url)
        return printPlugins(await fetchPlugins(opts.url, opts.key ?? process.env.NUCLEUS_ADMIN_KEY), opts.json);
      const kernel = Kernel.create({ file: opts.config, cli: setOverrides(opts) });
      kernel.plugins.resolve();
      printPlugins(kernel.plugins.list(), opts.json);
    });
  plugins
    .command('validate <dir>')
    .description('check a plugin folder: manifest, kernel API range, entry and its export')
    .action(async (dir: string) => {
      const result = await validatePluginDir(dir);
      const name = result.manifest ? `${result.manifest.id}@${result.manifest.version}` : resolve(dir);
      if (result.ok) return void process.stdout.write(`ok: ${name} is a valid plugin\n`);
      process.stderr.write(`invalid: ${name}\n${result.problems.map((p) => `  - ${p}`).join('\n')}\n`);
      process.exitCode = ExitCode.failure;
    });
  return plugins;
}

/** `nucleus plugin new <name>`: scaffold a plugin package. */
export function pluginNewCommand(): Command {
  const plugin = new Command('plugin').description('create plugins');
  plugin
    .command('new <name>')
    .description('scaffold a plugin package that builds, tests and hot-loads into a running server')
    .option('-d, --dir <folder>', 'folder to create it in', 'plugins')
    .action((name: string, opts: { dir: string }) => {
      const created = scaffoldPlugin({ name, parentDir: resolve(opts.dir) });
      process.stdout.write(
        `created ${created.dir}\n\nnext:\n  cd ${created.dir}\n  npm install && npm run build && npm test\n\n` +
          'A running `nucleus serve` watching that folder loads it as soon as it is built.\n',
      );
    });
  return plugin;
}
