import { setFlagsFromString } from 'node:v8';

/**
 * Whether the process was started with V8's `--optimize-for-size` (on the command line or in `NODE_OPTIONS`): then it
 * is the user's choice for the whole run, and {@link leanStartup} leaves it on afterwards.
 */
export function startedOptimizedForSize(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string | undefined = process.env.NODE_OPTIONS,
): boolean {
  const named = (arg: string) => /^--optimize[-_]for[-_]size$/.test(arg);
  return execArgv.some(named) || (nodeOptions ?? '').split(/\s+/).some(named);
}

/**
 * Runs `start` (plugin activation, model loading and warm-up) with V8 favouring memory over speed, then restores its
 * defaults for serving. Start-up allocates far more than the server keeps (graphs built, files parsed, modules
 * compiled), and with V8's defaults each heap grows to fit that peak and stays there: on a fresh `nucleus serve` with
 * the built-in models, the main thread's heap and those of the model workers started meanwhile held ~80 MiB more once
 * ready than with this (bench/results/idle-memory.md). While serving, the defaults come back, so the hot paths keep
 * V8's speed and the heaps grow again only as far as the load needs.
 *
 * The flag is process-wide: the CLI sets it, as the owner of the process; the library never does.
 */
export async function leanStartup<T>(start: () => Promise<T>): Promise<T> {
  if (startedOptimizedForSize()) return start();
  setFlagsFromString('--optimize-for-size');
  try {
    return await start();
  } finally {
    setFlagsFromString('--no-optimize-for-size');
  }
}
