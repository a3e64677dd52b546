import { createHash, type Hash } from 'node:crypto';

/**
 * A SHA-256 of a request body in canonical form: object keys in sorted order (so `{"a":1,"b":2}` and `{"b":2,"a":1}`
 * hash alike), arrays in order, `undefined` members left out as JSON leaves them out, and typed arrays (binary
 * tensors) hashed as their element type and raw bytes, so a tensor sent as bytes is never turned into text first.
 * `ignore` names top-level keys that do not change the answer (a request's own `id`).
 */
export function requestHash(body: unknown, ignore: readonly string[] = []): string {
  const hash = new CanonicalHash();
  feed(hash, body, new Set(ignore));
  return hash.digest();
}

// The SHA-256 with its text gathered into one update per run of text (each update is a call into native code): the
// same bytes reach the hash in the same order, so the digest is what one update per piece gives.
class CanonicalHash {
  readonly #hash: Hash = createHash('sha256');
  #text = '';

  update(text: string): void {
    this.#text += text;
  }

  bytes(data: Uint8Array): void {
    this.#flush();
    this.#hash.update(data);
  }

  digest(): string {
    this.#flush();
    return this.#hash.digest('hex');
  }

  #flush(): void {
    if (this.#text === '') return;
    this.#hash.update(this.#text);
    this.#text = '';
  }
}

// Each value is framed by a type letter, so no two different values feed the same bytes.
function feed(hash: CanonicalHash, value: unknown, ignore?: ReadonlySet<string>): void {
  if (value === null || typeof value !== 'object') {
    hash.update(typeof value === 'string' ? `s${JSON.stringify(value)}` : `p${JSON.stringify(value) ?? 'null'}`);
    return;
  }
  if (ArrayBuffer.isView(value)) {
    hash.update(`t${value.constructor.name}:${value.byteLength}:`);
    hash.bytes(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    return;
  }
  if (Array.isArray(value)) {
    // Tensor data sent as JSON is a (nested) list of numbers: its JSON text is already canonical, and native.
    if (plain(value)) {
      hash.update(`a${JSON.stringify(value)}`);
      return;
    }
    hash.update(`[${value.length}:`);
    for (const item of value) feed(hash, item === undefined ? null : item);
    hash.update(']');
    return;
  }
  const keys = Object.keys(value)
    .filter((k) => (value as Record<string, unknown>)[k] !== undefined && !ignore?.has(k))
    .sort();
  hash.update(`{${keys.length}:`);
  for (const key of keys) {
    hash.update(`k${JSON.stringify(key)}`);
    feed(hash, (value as Record<string, unknown>)[key]);
  }
  hash.update('}');
}

// Whether an array holds only numbers, strings, booleans, nulls and arrays of those (no objects, no typed arrays).
function plain(value: readonly unknown[]): boolean {
  for (const item of value) {
    if (item === null || typeof item === 'number' || typeof item === 'boolean' || typeof item === 'string') continue;
    if (Array.isArray(item) && plain(item)) continue;
    return false;
  }
  return true;
}

/** About how many bytes a response body holds in memory: strings, numbers and typed arrays' bytes, plus framing. */
export function bodyBytes(value: unknown): number {
  if (value === null || value === undefined) return 8;
  if (typeof value === 'string') return 16 + value.length * 2;
  if (typeof value !== 'object') return 8;
  if (ArrayBuffer.isView(value)) return 64 + value.byteLength;
  let n = 32;
  if (Array.isArray(value)) {
    for (const item of value) n += bodyBytes(item);
    return n;
  }
  for (const [k, v] of Object.entries(value)) n += 16 + k.length * 2 + bodyBytes(v);
  return n;
}
