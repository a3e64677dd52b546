import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** Filesystem roots made for a test, removed with {@link removeRoots}. */
const roots: string[] = [];

/** A filesystem root holding just the given files, as a machine's `/proc` and `/sys` would show them. */
export function machineRoot(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-machine-'));
  roots.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

export function removeRoots(): void {
  for (const dir of roots.splice(0)) rmSync(dir, { recursive: true, force: true });
}
