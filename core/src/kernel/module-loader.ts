import { register } from 'node:module';
import { pathToFileURL } from 'node:url';

let hooksRegistered = false;
let generation = 0;

/**
 * Imports a module as a new instance, bypassing the ESM cache, together with every file it imports
 * by relative path. ESM offers no unloading: each generation stays in memory (a plugin's few KB per
 * reload), which is why hot reload is for development and upgrades, not a per-request tool.
 */
export async function importFresh(file: string): Promise<Record<string, unknown>> {
  if (!hooksRegistered) {
    register(new URL('./reload-hooks.js', import.meta.url));
    hooksRegistered = true;
  }
  const url = pathToFileURL(file);
  url.searchParams.set('nucleus-gen', String(++generation));
  return (await import(url.href)) as Record<string, unknown>;
}
