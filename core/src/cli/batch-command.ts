import { existsSync } from 'node:fs';
import { Command } from 'commander';
import { ExtensionPoints, NucleusError, type BatchRunSummary } from '@nucleus/sdk';
import { flushLogger } from '../kernel/logger.js';
import { ProgressReporter } from '../kernel/progress-reporter.js';
import { Nucleus } from '../nucleus.js';
import { setOverrides, splitPair, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { UsageError } from './exit-codes.js';

interface BatchRunCliOptions extends ConfigOptions {
  model: string;
  input: string;
  output: string;
  format?: string;
  restart?: boolean;
  json?: boolean;
}

/** `nucleus batch run`: an offline job over a file of rows, in this process, through a `batchRunner` plugin. */
export function batchCommand(): Command {
  const run = withConfigOptions(new Command('run'))
    .description(
      'run every row of a JSONL or CSV file through a model, in input order, into a JSONL file; rerun the same ' +
        'command to resume',
    )
    .requiredOption(
      '-m, --model <name>',
      'a served model (configured or built in), or NAME=PATH to load one from a file',
    )
    .requiredOption('-i, --input <file>', 'rows: JSONL (one JSON value per line) or CSV with a header row')
    .requiredOption(
      '-o, --output <file>',
      'results, one JSON line per input row; also the checkpoint a rerun resumes from',
    )
    .option('--format <format>', 'jsonl or csv (default: from the input file name)')
    .option('--restart', 'start over instead of resuming from the rows already in the output')
    .option('--json', 'print the summary as JSON on stdout')
    .action(async (opts: BatchRunCliOptions) => {
      if (opts.format !== undefined && opts.format !== 'jsonl' && opts.format !== 'csv')
        throw new UsageError(`--format ${opts.format}: expected jsonl or csv`);
      if (!existsSync(opts.input)) throw new UsageError(`--input ${opts.input}: no such file`);
      const cli: Record<string, unknown> = { 'logging.level': 'warn', 'plugins.watch': false, ...setOverrides(opts) };
      let model = opts.model;
      if (model.includes('=')) {
        const [name, path] = splitPair(model, '--model');
        cli.models = [{ name, path }];
        model = name;
      }
      // Only the model the job runs opens (when it is a built-in); the others would cost memory and start-up.
      const kernel = Nucleus.create({ file: opts.config, cli, builtinModels: [model], serving: false });
      await kernel.start();
      const stop = new AbortController();
      const interrupt = (signal: string) => {
        if (stop.signal.aborted) return;
        process.stderr.write(`\nnucleus: ${signal}: finishing the rows in flight; rerun the same command to resume\n`);
        stop.abort();
      };
      const onSigint = () => interrupt('SIGINT');
      const onSigterm = () => interrupt('SIGTERM');
      process.on('SIGINT', onSigint);
      process.on('SIGTERM', onSigterm);
      try {
        const runners = kernel.extensions.point(ExtensionPoints.batchRunner);
        const runner = runners.first();
        if (!runner) throw new UsageError('no batchRunner plugin is active (the batch-jobs plugin runs batch jobs)');
        const summary = await runners.use(runner, (r) =>
          r.run({
            model,
            input: opts.input,
            output: opts.output,
            resume: opts.restart !== true,
            progress: new ProgressReporter({ logger: kernel.logger }).create(),
            signal: stop.signal,
            ...(opts.format !== undefined && { format: opts.format as 'jsonl' | 'csv' }),
          }),
        );
        if (opts.json) process.stdout.write(`${JSON.stringify(summary)}\n`);
        else process.stderr.write(describe(summary, opts.output));
        if (!summary.complete) process.exitCode = 130;
      } catch (err) {
        if (err instanceof NucleusError && err.status < 500) throw new UsageError(err.message);
        throw err;
      } finally {
        process.off('SIGINT', onSigint);
        process.off('SIGTERM', onSigterm);
        await kernel.stop();
        await flushLogger(kernel.logger);
      }
    });
  return new Command('batch').description('offline batch jobs over files of rows').addCommand(run);
}

function describe(s: BatchRunSummary, output: string): string {
  const rate = s.seconds > 0 ? `, ${Math.round((s.succeeded + s.failed) / s.seconds)} rows/s` : '';
  const resumed = s.resumedFrom > 0 ? ` (resumed after ${s.resumedFrom})` : '';
  const state = s.complete ? 'done' : 'stopped';
  return `batch ${state}: ${s.rows} rows in ${output}${resumed}; this run ${s.succeeded} ok, ${s.failed} errors in ${s.seconds.toFixed(1)} s${rate}\n`;
}
