import * as nodeCrypto from 'node:crypto';
import { createHash, subtle } from 'node:crypto';

/** `crypto.hash`, one call with no Hash object (Node 20.12 and later); before it, a Hash object does the same. */
const sha256Hex: (data: string | Uint8Array) => string =
  typeof nodeCrypto.hash === 'function'
    ? (data) => nodeCrypto.hash('sha256', data, 'hex')
    : (data) => createHash('sha256').update(data).digest('hex');

/**
 * Tensors at least this large are digested on libuv's thread pool (WebCrypto's `digest` runs there), not on the
 * event loop: SHA-256 of a 588 KiB image takes about 0.5 ms, and a burst of 32 of them held the loop for 16 ms.
 * Below it, the hop to the pool costs more than hashing in place.
 */
const POOL_BYTES = 64 * 1024;

/**
 * A SHA-256 of a request body in canonical form: object keys in sorted order (so `{"a":1,"b":2}` and `{"b":2,"a":1}`
 * hash alike), arrays in order, `undefined` members left out as JSON leaves them out, and typed arrays (binary
 * tensors) hashed as their element type and raw bytes, so a tensor sent as bytes is never turned into text first (a
 * large one as its own SHA-256, worked out off the event loop). `ignore` names top-level keys that do not change the
 * answer (a request's own `id`). The digest is returned at once unless a large tensor is being digested; then the
 * body must not change until the promise settles.
 */
export function requestHash(body: unknown, ignore: readonly string[] = []): string | Promise<string> {
  const hash = new CanonicalHash();
  feed(hash, body, new Set(ignore));
  return hash.digest();
}

// The canonical form as a list of parts, its text gathered into one string per run of text (each update of the
// SHA-256 is a call into native code): the same bytes reach the hash in the same order as one update per piece.
class CanonicalHash {
  readonly #parts: Array<string | Uint8Array | Promise<ArrayBuffer>> = [];
  #text = '';

  update(text: string): void {
    this.#text += text;
  }

  /** A typed array's bytes, framed by `type:byteLength:`; a large one's bytes are fed as their SHA-256. */
  tensor(type: string, data: Uint8Array): void {
    if (data.byteLength < POOL_BYTES) {
      this.update(`t${type}:${data.byteLength}:`);
      this.#flush();
      this.#parts.push(data);
      return;
    }
    // Its own letter: a digest in place of the bytes is never read as bytes of another tensor.
    this.update(`h${type}:${data.byteLength}:`);
    this.#flush();
    // WebCrypto takes no shared memory: such a tensor is digested here, to the same digest.
    this.#parts.push(
      data.buffer instanceof SharedArrayBuffer
        ? createHash('sha256').update(data).digest()
        : subtle.digest('SHA-256', data),
    );
  }

  digest(): string | Promise<string> {
    this.#flush();
    // Small bodies (nothing digested on the pool): no promise to wait for.
    if (!this.#parts.some((part) => part instanceof Promise))
      return this.#hashed(this.#parts as Array<string | Uint8Array>);
    return this.#pooled();
  }

  async #pooled(): Promise<string> {
    const parts = await Promise.all(
      this.#parts.map((part) =>
        typeof part === 'string' || part instanceof Uint8Array ? part : part.then((d) => new Uint8Array(d)),
      ),
    );
    return this.#hashed(parts);
  }

  // One-shot: a Hash object per request cost four times the hashing of a small body. The parts as one buffer are the
  // same bytes in the same order, so the same digest.
  #hashed(parts: ReadonlyArray<string | Uint8Array>): string {
    if (parts.length === 1 && typeof parts[0] === 'string') return sha256Hex(parts[0]);
    return sha256Hex(Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : p))));
  }

  #flush(): void {
    if (this.#text === '') return;
    this.#parts.push(this.#text);
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
    hash.tensor(value.constructor.name, new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
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
