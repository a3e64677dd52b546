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
  if (opensAtMost(text, limit)) return false;
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

/**
 * Whether `text` holds at most `limit` opening brackets (inside strings too, which only overcounts). Each level of
 * nesting needs one, so such a text cannot nest deeper: a tensor body, megabytes of numbers in a few flat lists, is
 * cleared by native searches instead of a walk over every byte (a fifth of a parser thread's time on 3 MB images).
 */
function opensAtMost(text: Uint8Array | string, limit: number): boolean {
  // Buffer's indexOf is memchr; a plain Uint8Array's is a loop that is no faster than the walk.
  const haystack = typeof text === 'string' ? text : Buffer.from(text.buffer, text.byteOffset, text.byteLength);
  let count = 0;
  for (const c of [OPEN_OBJECT, OPEN_ARRAY]) {
    const find = (from: number) =>
      typeof haystack === 'string' ? haystack.indexOf(String.fromCharCode(c), from) : haystack.indexOf(c, from);
    for (let at = find(0); at >= 0; at = find(at + 1)) if (++count > limit) return false;
  }
  return true;
}

/** The 400 for a body nested deeper than `server.jsonMaxDepth`. */
export function jsonTooDeep(limit: number, what = 'request body'): NucleusError {
  return badRequest(
    'json_too_deep',
    `the ${what} nests objects and arrays more than ${limit} levels deep (server.jsonMaxDepth); flatten it`,
  );
}
