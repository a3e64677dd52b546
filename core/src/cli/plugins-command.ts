import { Command } from 'commander';
import { resolve } from 'node:path';
import { scaffoldPlugin } from '@nucleus/sdk/scaffold';
import type { PluginInfo } from '../kernel/plugin-host.js';
import { Kernel } from '../kernel/kernel.js';
import { validatePluginDir } from '../kernel/plugin-validation.js';
import { setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { ExitCode } from './exit-codes.js';
import { formatTable } from './format-table.js';

interface ListOptions extends ConfigOptions {
  json?: boolean;
  url?: string;
  key?: string;
}

async function fetchPlugins(url: string, key: string | undefined): Promise<PluginInfo[]> {
  const res = await fetch(new URL('/admin/plugins', url), { headers: key ? { authorization: `Bearer ${key}` } : {} });
  const body = (await res.json()) as { plugins?: PluginInfo[]; error?: { message: string } };
  if (!res.ok) throw new Error(`${url} answered ${res.status}: ${body.error?.message ?? 'no message'}`);
  return body.plugins ?? [];
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
      if (opts.url) return printPlugins(await fetchPlugins(opts.url, opts.key ?? process.env.NUCLEUS_ADMIN_KEY), opts.json);
      const kernel = Kernel.create({ file: opts.config, cli: setOverrides(opts) });
      kernel.plugins.resolve();
      printPlugins(kernel.plugins.list(), opts.json);
    });
  plugins
    .command('validate <dir>')
    .description("check a plugin folder: manifest, kernel API range, entry and its export")
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
