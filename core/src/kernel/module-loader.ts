import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { register } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';

let hooksRegistered = false;
let generation = 0;

/** Most files looked at to tell whether a plugin folder changed; a larger folder gets a new generation every time. */
const MAX_FILES = 2000;

/**
 * Imports a module as the generation its folder's files make, together with every file it imports by relative
 * path: after a file in `folder` changed, a new instance, bypassing the ESM cache; while none did, the instance
 * imported before. ESM offers no unloading: each generation stays in memory (a plugin's source and module records,
 * some 60 KB), so reloading a plugin whose files are unchanged (an admin reload, a watcher that fires twice) must not
 * make a new one.
 */
export async function importFresh(file: string, folder = dirname(file)): Promise<Record<string, unknown>> {
  if (!hooksRegistered) {
    register(new URL('./reload-hooks.js', import.meta.url));
    hooksRegistered = true;
  }
  const url = pathToFileURL(file);
  url.searchParams.set('nucleus-gen', filesVersion(folder) ?? `n${++generation}`);
  return (await import(url.href)) as Record<string, unknown>;
}

// A digest of the name, size and modification time of every file under `folder` (dependencies and dot folders
// aside); undefined when there are too many to look at.
function filesVersion(folder: string): string | undefined {
  const hash = createHash('sha256');
  let files = 0;
  const walk = (dir: string): boolean => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (entry.name.startsWith('.') || entry.name === 'node_modules') continue;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (!walk(path)) return false;
      } else if (++files > MAX_FILES) return false;
      else {
        const stat = statSync(path, { bigint: true });
        hash.update(`${path}\0${stat.size}\0${stat.mtimeNs}\n`);
      }
    }
    return true;
  };
  try {
    return walk(folder) ? hash.digest('hex').slice(0, 16) : undefined;
  } catch {
    return undefined;
  }
}
