import type { Command } from 'commander';
import { UsageError } from './exit-codes.js';

/** Options shared by commands that read the config. */
export interface ConfigOptions {
  config?: string;
  set?: string[];
}

/** Adds `--config` and the repeatable `--set key=value`. */
export function withConfigOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'config file (YAML or JSON); also NUCLEUS_CONFIG')
    .option('--set <key=value>', 'set any config key, e.g. --set queue.highWatermark=200 (repeatable)', collect, []);
}

/** Commander's reducer for repeatable options. */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Splits `NAME=VALUE`, naming the flag when the `=` is missing. */
export function splitPair(text: string, flag: string): [string, string] {
  const at = text.indexOf('=');
  if (at <= 0 || at === text.length - 1) throw new UsageError(`${flag} expects NAME=VALUE, got "${text}"`);
  return [text.slice(0, at), text.slice(at + 1)];
}

/** The `--set` pairs as dotted path → raw string (typed later by the config schema). */
export function setOverrides(options: ConfigOptions): Record<string, unknown> {
  return Object.fromEntries((options.set ?? []).map((pair) => splitPair(pair, '--set')));
}
