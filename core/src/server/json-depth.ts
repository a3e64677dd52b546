import { badRequest, type NucleusError } from '@nucleus/sdk';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

/**
 * Whether JSON text nests objects and arrays deeper than `limit`, found by a scan of its brackets outside strings
 * (UTF-8 bytes or a string; the characters that matter are ASCII either way). V8 parses any depth, but whatever
 * walks the result afterwards recursively (structured clone to hand it from a worker, schema validation) overflows
 * the stack on a body nested a hundred thousand levels deep, so such bodies are refused before that.
 */
export function jsonNestsDeeperThan(text: Uint8Array | string, limit: number): boolean {
  const bytes = typeof text !== 'string';
  const n = text.length;
  let depth = 0;
  let inString = false;
  for (let i = 0; i < n; i++) {
    const c = bytes ? (text as Uint8Array)[i]! : (text as string).charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++;
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) depth--;
  }
  return false;
}

/** The 400 for a body nested deeper than `server.jsonMaxDepth`. */
export function jsonTooDeep(limit: number, what = 'request body'): NucleusError {
  return badRequest(
    'json_too_deep',
    `the ${what} nests objects and arrays more than ${limit} levels deep (server.jsonMaxDepth); flatten it`,
  );
}
