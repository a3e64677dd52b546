import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** The `nucleus` CLI entry. */
export const CLI = join(REPO_ROOT, 'core/dist/cli/main.js');

/** A fresh folder inside the repository (so plugins written there resolve `@nucleus/sdk`). */
export function tempDir(prefix: string): string {
  const base = join(REPO_ROOT, '.cache/test-tmp');
  mkdirSync(base, { recursive: true });
  return mkdtempSync(join(base, `${prefix}-`));
}
