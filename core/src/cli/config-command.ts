import { Command } from 'commander';
import { describeSource, renderConfigReference } from '../kernel/config/index.js';
import { Kernel } from '../kernel/kernel.js';
import { setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { formatTable } from './format-table.js';

/** `nucleus config …`: show the effective config and its schema. */
// What these commands print goes to stdout; a config warning (a short key …) goes to stderr, beside it.
const kernelFor = (opts: ConfigOptions) =>
  Kernel.create({ file: opts.config, cli: setOverrides(opts), logDestination: process.stderr });

export function configCommand(): Command {
  const config = new Command('config').description('show the effective config and the config reference');
  withConfigOptions(config.command('print'))
    .description('print the effective config and where each value came from (default, file, env, command line)')
    .option('--json', 'print JSON: { config, sources }')
    .action((opts: ConfigOptions & { json?: boolean }) => {
      const store = kernelFor(opts).config;
      if (opts.json) {
        const sources = Object.fromEntries(
          [...store.sources()].map(([path, source]) => [path, describeSource(source)]),
        );
        return void process.stdout.write(`${JSON.stringify({ config: store.redacted(), sources }, null, 2)}\n`);
      }
      const rows = store.entries().map((e) => [e.path, JSON.stringify(e.value), describeSource(e.source), e.env ?? '']);
      process.stdout.write(`${formatTable(['KEY', 'VALUE', 'SOURCE', 'ENV'], rows)}\n`);
    });
  withConfigOptions(config.command('schema'))
    .description('print the JSON Schema of the config, plugin sections included (or the Markdown reference)')
    .option('--markdown', 'print the reference table instead')
    .action((opts: ConfigOptions & { markdown?: boolean }) => {
      const schema = kernelFor(opts).config.schema();
      process.stdout.write(
        opts.markdown ? `${renderConfigReference(schema)}\n` : `${JSON.stringify(schema, null, 2)}\n`,
      );
    });
  return config;
}
