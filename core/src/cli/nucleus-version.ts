import { readFileSync } from 'node:fs';

/** The version of @nucleus/core, as `nucleus --version` and the start-up banner print it. */
export const NUCLEUS_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
