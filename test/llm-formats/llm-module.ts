// Where the shared reference model lives, and the compiled LLM module under test.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

/** `<repo>/../shared/models/stories260K`, the trained reference model and its published outputs. */
export const STORIES_DIR = join(REPO_ROOT, '..', 'shared', 'models', 'stories260K');

/** `<repo>/../shared/models/llm-oracle`: random-weight GGUFs in real layouts with llama.cpp and exact references. */
export const ORACLE_DIR = join(REPO_ROOT, '..', 'shared', 'models', 'llm-oracle');

let told = false;
let toldOracle = false;

/** Skips the calling test (or hook), saying why once, when the shared reference model is not on this machine. */
export function requireStories(ctx: Mocha.Context): void {
  if (existsSync(join(STORIES_DIR, 'stories260K.gguf'))) return;
  if (!told) {
    told = true;
    console.log(`    (stories260K tests skipped: ${STORIES_DIR} is absent)`);
  }
  ctx.skip();
}

/** Skips the calling test (or hook), saying why once, when the oracle models are not on this machine. */
export function requireOracle(ctx: Mocha.Context): void {
  if (existsSync(join(ORACLE_DIR, 'MANIFEST.json'))) return;
  if (!toldOracle) {
    toldOracle = true;
    console.log(`    (llm-oracle tests skipped: ${ORACLE_DIR} is absent)`);
  }
  ctx.skip();
}

/** A reference file's `prompt:` and `next:` id lists. */
export function parseIds(text: string): { prompt: number[]; next: number[] } {
  const line = (name: string): number[] => {
    const found = text.split('\n').find((l) => l.startsWith(`${name}:`));
    if (!found) throw new Error(`no ${name}: line`);
    return found
      .slice(name.length + 1)
      .trim()
      .split(/\s+/)
      .map(Number);
  };
  return { prompt: line('prompt'), next: line('next') };
}
