import { Command } from 'commander';
import { ExtensionPoints, NucleusError, type CachedModel, type ModelSourceProvider } from '@nucleus/sdk';
import { ModelLocator } from '../engine/model-locator.js';
import { Kernel } from '../kernel/kernel.js';
import { flushLogger } from '../kernel/logger.js';
import { setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { UsageError } from './exit-codes.js';
import { formatTable } from './format-table.js';

interface PullOptions extends ConfigOptions {
  sha256?: string;
}

/**
 * Runs `fn` with the active `modelSource` providers: the plugins are activated (none of the engines start, no model
 * loads), and deactivated again afterwards.
 */
async function withSources<T>(
  opts: ConfigOptions,
  fn: (locator: ModelLocator, providers: readonly ModelSourceProvider[], kernel: Kernel) => Promise<T>,
): Promise<T> {
  // Plugins' start-up lines would bury the answer: only warnings, unless asked for more.
  const kernel = Kernel.create({
    file: opts.config,
    cli: { 'logging.level': 'warn', ...setOverrides(opts) },
    serving: false,
  });
  await kernel.plugins.start();
  try {
    const point = kernel.extensions.point(ExtensionPoints.modelSource);
    const locator = new ModelLocator(point, kernel.logger);
    return await fn(locator, locator.providers(), kernel);
  } finally {
    await kernel.plugins.stop();
    await flushLogger(kernel.logger);
  }
}

// A fetch that failed because of what was asked (a bad source, a 404, a pin) is a usage error; the network is not.
function asExit(err: unknown): never {
  if (err instanceof NucleusError && err.status < 500) throw new UsageError(err.message);
  throw err;
}

function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** `nucleus pull SOURCE`: fetch a model into the cache ahead of serving it. */
export function pullCommand(): Command {
  return withConfigOptions(new Command('pull'))
    .argument('<source>', 'a model source a plugin fetches, e.g. hf://ORG/REPO/FILE or https://HOST/PATH/FILE')
    .description('download a model into the local cache (hf://…, https://…) so that serving it needs no network')
    .option('--sha256 <hex>', 'refuse the file unless it has this SHA-256 (one file only)')
    .action(async (source: string, opts: PullOptions) => {
      if (ModelLocator.schemeOf(source) === undefined) {
        throw new UsageError(`${source} is a local path; pull takes a source with a scheme, e.g. hf://ORG/REPO/FILE`);
      }
      const path = await withSources(opts, (locator) =>
        locator.locate(source, opts.sha256 ? { sha256: opts.sha256 } : {}).catch(asExit),
      );
      process.stdout.write(`${source}\n  -> ${path}\n`);
    });
}

/** `nucleus models ls|rm`: the models the source plugins hold in their caches. */
export function modelsCommand(): Command {
  const models = new Command('models').description('list and remove models downloaded into the local cache');
  withConfigOptions(models.command('ls'))
    .description('list cached models with their size on disk')
    .option('--json', 'print JSON')
    .action(async (opts: ConfigOptions & { json?: boolean }) => {
      const cached = await withSources(opts, async (_, providers) => {
        const all: CachedModel[] = [];
        for (const p of providers) all.push(...((await p.cached?.()) ?? []));
        return all.sort((a, b) => a.source.localeCompare(b.source));
      });
      if (opts.json) return void process.stdout.write(`${JSON.stringify(cached, null, 2)}\n`);
      const rows = cached.map((m) => [
        m.source,
        formatBytes(m.sizeBytes),
        String(m.files),
        m.revisions.join(', '),
        m.path,
      ]);
      process.stdout.write(`${formatTable(['MODEL', 'SIZE', 'FILES', 'REVISIONS', 'PATH'], rows)}\n`);
    });
  withConfigOptions(models.command('rm'))
    .argument('<model>', 'a cached model as `models ls` lists it, e.g. hf://ORG/REPO')
    .description('remove a cached model and every revision of it')
    .action(async (model: string, opts: ConfigOptions) => {
      const source = ModelLocator.schemeOf(model) === undefined ? `hf://${model}` : model;
      const scheme = ModelLocator.schemeOf(source)!;
      const removed = await withSources(opts, async (_, providers) => {
        const provider = providers.find((p) => p.schemes.includes(scheme) && p.remove);
        if (!provider) throw new UsageError(`no active plugin keeps ${scheme}:// models in a cache`);
        return provider.remove!(source).catch(asExit);
      });
      if (!removed) throw new UsageError(`${model} is not in the cache; \`nucleus models ls\` lists what is`);
      process.stdout.write(`removed ${removed.source} (${formatBytes(removed.sizeBytes)}) from ${removed.path}\n`);
    });
  return models;
}
