import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The folder whose `plugins/` and `node_modules/` the kernel scans: the Nucleus checkout this core
 * belongs to when run from one, else the current directory (core installed as a package).
 */
export function defaultProjectRoot(): string {
  const coreDir = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
  const checkout = dirname(coreDir);
  return existsSync(join(checkout, 'plugins')) && existsSync(join(checkout, 'package.json')) ? checkout : process.cwd();
}
