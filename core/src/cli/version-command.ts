import { Command } from 'commander';
import { createRequire } from 'node:module';
import { Kernel } from '../kernel/kernel.js';
import { setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { formatTable } from './format-table.js';
import { NUCLEUS_VERSION } from './nucleus-version.js';

/** What `nucleus version --json` prints: enough to name a build in a bug report or match it to its SBOM. */
export interface VersionReport {
  nucleus: string;
  node: string;
  onnxruntimeNode: string;
  platform: string;
  arch: string;
  plugins: { id: string; version: string; source: string }[];
}

// Read from its package.json rather than by importing it: importing loads the native library, which a
// version query must not need (and the version is printed even where that library cannot load).
function onnxruntimeNodeVersion(): string {
  try {
    return (createRequire(import.meta.url)('onnxruntime-node/package.json') as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function versionReport(options: ConfigOptions): VersionReport {
  const kernel = Kernel.create({ file: options.config, cli: setOverrides(options) });
  kernel.plugins.resolve();
  const plugins = kernel.plugins
    .list()
    .map((p) => ({ id: p.id, version: p.version, source: p.source }))
    .sort((a, b) => a.id.localeCompare(b.id));
  return {
    nucleus: NUCLEUS_VERSION,
    node: process.versions.node,
    onnxruntimeNode: onnxruntimeNodeVersion(),
    platform: process.platform,
    arch: process.arch,
    plugins,
  };
}

/** `nucleus version`: Nucleus, Node, onnxruntime-node and every discovered plugin, as text or JSON. */
export function versionCommand(): Command {
  return withConfigOptions(new Command('version'))
    .description('print the versions of Nucleus, Node.js, onnxruntime-node and every plugin')
    .option('--json', 'print JSON')
    .action((opts: ConfigOptions & { json?: boolean }) => {
      const report = versionReport(opts);
      if (opts.json) return void process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      process.stdout.write(
        `nucleus ${report.nucleus}\nnode ${report.node} (${report.platform}-${report.arch})\n` +
          `onnxruntime-node ${report.onnxruntimeNode}\n\n` +
          `${formatTable(
            ['PLUGIN', 'VERSION', 'SOURCE'],
            report.plugins.map((p) => [p.id, p.version, p.source]),
          )}\n`,
      );
    });
}
