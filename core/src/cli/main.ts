import { Command, CommanderError } from 'commander';
import { ConfigError } from '../kernel/config/index.js';
import { RouteConflictError } from '../kernel/plugin-contract.js';
import { RequiredModelsError } from '../kernel/kernel-module.js';
import { ListenError } from '../server/listen-error.js';
import { batchCommand } from './batch-command.js';
import { configCommand } from './config-command.js';
import { doctorCommand } from './doctor-command.js';
import { modelsCommand, pullCommand } from './models-command.js';
import { NUCLEUS_VERSION } from './nucleus-version.js';
import { pluginNewCommand, pluginsCommand } from './plugins-command.js';
import { quantizeCommand } from './quantize-command.js';
import { serveCommand } from './serve-command.js';
import { versionCommand } from './version-command.js';
import { ExitCode, UsageError } from './exit-codes.js';

// Output piped into `head` and closed early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const program = new Command('nucleus')
  .description('Nucleus: a model-inference runtime for Node.js, built from plugins.')
  .version(NUCLEUS_VERSION, '-v, --version')
  .showHelpAfterError('(run with --help for usage)')
  .exitOverride();

program.addCommand(serveCommand());
program.addCommand(pluginsCommand());
program.addCommand(pluginNewCommand());
program.addCommand(configCommand());
program.addCommand(doctorCommand());
program.addCommand(pullCommand());
program.addCommand(modelsCommand());
program.addCommand(quantizeCommand());
program.addCommand(batchCommand());
program.addCommand(versionCommand());
// Subcommands do not inherit these settings: without them commander exits 1 by itself on a usage error.
const everyCommand = (c: Command): Command[] => [c, ...c.commands.flatMap(everyCommand)];
for (const c of everyCommand(program)) c.exitOverride().showHelpAfterError('(run with --help for usage)');
program.addHelpText(
  'after',
  `
Exit codes: 0 ok, 1 failure, 2 bad usage or invalid config (a port in use included).
When something does not work, \`nucleus doctor\` checks this machine and the config and says what to fix.
Every config key can also be set in the environment: server.port → NUCLEUS_SERVER_PORT.`,
);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode === 0 ? ExitCode.ok : ExitCode.usage;
  } else if (
    err instanceof ConfigError ||
    err instanceof UsageError ||
    err instanceof ListenError ||
    err instanceof RouteConflictError ||
    (err instanceof RequiredModelsError && err.badConfig)
  ) {
    process.stderr.write(`nucleus: ${err.message}\n`);
    process.exitCode = ExitCode.usage;
  } else {
    process.stderr.write(`nucleus: ${(err as Error).message ?? String(err)}\n`);
    process.exitCode = ExitCode.failure;
  }
}
