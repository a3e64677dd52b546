import cluster from 'node:cluster';
import { Command } from 'commander';
import { loadConfig } from '../kernel/config/index.js';
import { createLogger, flushLogger, resolveLogFormat, type LogFormat, type LogLevel } from '../kernel/logger.js';
import { frontProcessCount } from '../kernel/process-group.js';
import { FrontProcesses } from '../server/front-processes.js';
import { NucleusServer } from '../server/nucleus-server.js';
import { collect, setOverrides, splitPair, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { leanStartup } from './lean-startup.js';
import { NUCLEUS_VERSION } from './nucleus-version.js';
import { startupBanner, startupLine, startupSummary } from './startup-banner.js';

interface ServeOptions extends ConfigOptions {
  host?: string;
  port?: string;
  model: string[];
  backend?: string;
  watch: boolean;
  logFormat?: string;
}

/** The overrides `serve`'s flags make, as dotted config paths. */
export function serveOverrides(opts: ServeOptions): Record<string, unknown> {
  const cli: Record<string, unknown> = setOverrides(opts);
  if (opts.host !== undefined) cli['server.host'] = opts.host;
  if (opts.port !== undefined) cli['server.port'] = opts.port;
  if (opts.backend !== undefined) cli.backend = opts.backend;
  if (opts.watch === false) cli['plugins.watch'] = false;
  if (opts.logFormat !== undefined) cli['logging.format'] = opts.logFormat;
  if (opts.model.length)
    cli.models = opts.model.map((m) => {
      const [name, path] = splitPair(m, '--model');
      return { name, path };
    });
  return cli;
}

/** `nucleus serve`: start the server. */
export function serveCommand(): Command {
  return withConfigOptions(new Command('serve'))
    .description('start the server (HTTP, SSE and WebSocket on one port)')
    .option('-H, --host <host>', 'address to listen on (server.host, default 127.0.0.1)')
    .option('-p, --port <port>', 'port to listen on (server.port, default 8080; 0 picks a free one)')
    .option(
      '-m, --model <name=path>',
      'serve a model from a file or folder an active model format loads (see `nucleus plugins list`); repeatable',
      collect,
      [],
    )
    .option('-b, --backend <name>', 'execution backend: auto, cpu, cuda or rocm (backend)')
    .option('--no-watch', 'do not hot-reload plugins when their files change (plugins.watch)')
    .option('--log-format <format>', 'auto (pretty on a terminal, JSON otherwise), json or pretty (logging.format)')
    .action(async (opts: ServeOptions) => {
      if (cluster.isPrimary && (await servedByFrontProcesses(opts))) return;
      let server: NucleusServer;
      try {
        server = await leanStartup(() => NucleusServer.start({ file: opts.config, cli: serveOverrides(opts) }));
      } catch (err) {
        // A front process ends with its error as a lone server does; its channel to the primary would keep it alive.
        if (cluster.isWorker) cluster.worker?.disconnect();
        throw err;
      }
      let stopping = false;
      const shutdown = (signal: string) => {
        if (stopping) return;
        stopping = true;
        server.kernel.logger.info({ signal }, 'shutting down');
        server.stop().then(
          () => process.exit(0),
          (err: unknown) => {
            server.kernel.logger.error({ err }, 'shutdown failed');
            process.exit(1);
          },
        );
      };
      // Before the server says it is up: whoever reacts to that line may stop it at once.
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
      await announce(server);
    });
}

/**
 * With `server.processes` > 1 this process only forks the front processes and waits for them (true); otherwise it
 * serves itself (false). Config problems are left to the processes, which report them as a single one would.
 */
async function servedByFrontProcesses(opts: ServeOptions): Promise<boolean> {
  const { config } = loadConfig({
    file: opts.config,
    cli: serveOverrides(opts),
    ignoreUnknownPluginSections: true,
    keepIssues: true,
    validate: false,
  });
  const count = frontProcessCount(config.server?.processes);
  if (count <= 1) return false;
  const logger = createLogger({
    level: config.logging?.level as LogLevel | undefined,
    format: config.logging?.format as LogFormat | undefined,
  }).child({ pid: process.pid, role: 'primary' });
  logger.info({ processes: count }, 'starting front processes');
  process.exitCode = await new FrontProcesses(count, logger).run();
  await flushLogger(logger);
  return true;
}

/**
 * Says the server is up, whatever `logging.level` is (supervisors and scripts wait for it): a banner on a terminal,
 * one JSON line in the log's own shape otherwise. Both carry `nucleus listening on <url>`.
 */
async function announce(server: NucleusServer): Promise<void> {
  const pretty = resolveLogFormat(server.kernel.config.get('logging.format')) === 'pretty';
  const terminal = process.stdout.isTTY === true;
  const summary = startupSummary(server, NUCLEUS_VERSION, process.uptime() * 1000, terminal);
  // Pretty lines are written from the logger's own thread: let the start-up lines out first.
  await flushLogger(server.kernel.logger);
  const text = pretty ? startupBanner(summary, terminal && !process.env.NO_COLOR) : startupLine(summary);
  // One of several front processes: the primary says it once all of them serve.
  if (server.kernel.processGroup.size > 1) server.kernel.processGroup.announceReady(server.url, text);
  else process.stdout.write(text);
}
