import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** `<repo root>/.cache/models`: where models are generated when the config's `cache.dir` (env NUCLEUS_CACHE_DIR) is unset. */
export function defaultModelCacheDir(): string {
  return join(findRepoRoot(), '.cache', 'models');
}

// The workspace root is the nearest package.json above this file that declares workspaces.
function findRepoRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (let dir = here; ; ) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { workspaces?: unknown }).workspaces) return dir;
      } catch {
        // An unreadable package.json is not the root; keep climbing.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return join(here, '..', '..', '..', '..');
    dir = parent;
  }
}
