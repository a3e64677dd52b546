import { createHash } from 'node:crypto';
import type { CachePolicy } from '@nucleus/sdk';
import type { KvArray, KvLayout } from '../generation/kv-batch.js';
import { blockBytes, blockElements } from './kv-blocks.js';

/** How a {@link PrefixCache} is shaped and bounded. */
export interface PrefixCacheOptions {
  layout: KvLayout;
  /** Tokens per block: prefixes are shared and evicted in whole blocks. */
  blockTokens: number;
  /** Most bytes of KV (and token ids) the cache holds. */
  maxBytes: number;
  /** Decides what is evicted; the cache tells it every insert, access and removal. */
  policy: CachePolicy;
}

/** Counters and sizes of a prefix cache; hits and misses count blocks, and are cumulative. */
export interface PrefixCacheStats {
  /** Prompt blocks served from the cache. */
  hits: number;
  /** Whole prompt blocks looked up and not found (they were computed). */
  misses: number;
  /** Blocks dropped to stay under `capacityBytes`. */
  evictions: number;
  /** Blocks dropped because their conversations ended. */
  released: number;
  bytes: number;
  capacityBytes: number;
  entries: number;
}

/** The cached start of a token sequence: how many tokens, and their KV blocks in order. */
export interface PrefixMatch {
  tokens: number;
  blocks: KvArray[];
}

interface Block {
  readonly key: string;
  readonly parent: string | undefined;
  readonly tokens: Int32Array;
  readonly data: KvArray;
  readonly children: Set<string>;
  /** Conversations that created or reused the block; it outlives a released conversation while others remain. */
  readonly owners: Set<string>;
  /** Used by a request outside any conversation: never dropped by a release. */
  anonymous: boolean;
  /** When it was last inserted or used, in the cache's own clock: the recency order serialization keeps. */
  tick: number;
}

const MAGIC = 0x4350584e; // "NXPC" little-endian
const VERSION = 1;
/** A policy that keeps naming blocks the cache does not hold is given up on after this many in a row. */
const STALE_VICTIMS = 64;

/**
 * KV of token-sequence prefixes, shared at block granularity. Block i of a sequence is keyed by a hash of block
 * i − 1's key and its own token ids, so one key stands for everything before it; a lookup walks the chain from the
 * first block and stops at the first miss. Blocks form a tree (a block's parent is the block before it); dropping a
 * block drops the blocks that extend it, which could no longer be reached. Each block keeps its token ids and its
 * parent's key and a lookup compares them, so a hash collision is a miss, never wrong KV.
 *
 * What to evict is the policy's choice. Chains are reported to it leaf first and root last, so under LRU the shared
 * start of a prefix is the last thing to go and leaves are evicted before the blocks they extend.
 */
export class PrefixCache {
  readonly layout: KvLayout;
  readonly blockTokens: number;
  readonly #policy: CachePolicy;
  readonly #blocks = new Map<string, Block>();
  readonly #blockBytes: number;
  readonly #blockElements: number;
  #maxBytes: number;
  #bytes = 0;
  #tick = 0;
  #hits = 0;
  #misses = 0;
  #evictions = 0;
  #released = 0;

  constructor(options: PrefixCacheOptions) {
    if (!Number.isInteger(options.blockTokens) || options.blockTokens < 1)
      throw new Error(`blockTokens must be a positive integer, not ${options.blockTokens}`);
    this.layout = { ...options.layout };
    this.blockTokens = options.blockTokens;
    this.#policy = options.policy;
    this.#maxBytes = Math.max(0, options.maxBytes);
    this.#blockElements = blockElements(this.layout, this.blockTokens);
    this.#blockBytes = blockBytes(this.layout, this.blockTokens) + this.blockTokens * 4;
  }

  /** Bytes one block takes (its KV and its token ids). */
  get bytesPerBlock(): number {
    return this.#blockBytes;
  }

  /** Current counters and sizes. */
  get stats(): PrefixCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      evictions: this.#evictions,
      released: this.#released,
      bytes: this.#bytes,
      capacityBytes: this.#maxBytes,
      entries: this.#blocks.size,
    };
  }

  /** Whether the block with this key is cached (for tests and tools). */
  has(key: string): boolean {
    return this.#blocks.has(key);
  }

  /** Tokens of `ids` the cache could serve now, at most `maxTokens`; changes nothing (no stats, no recency). */
  peek(ids: readonly number[], maxTokens = ids.length, namespace?: string): number {
    return this.#walk(ids, maxTokens, namespace).length * this.blockTokens;
  }

  /**
   * The longest cached start of `ids`, at most `maxTokens` tokens (leave one prompt token uncached so the prefill
   * has a position to give logits for). Counts hits and misses, marks the blocks used, and tags them with
   * `conversationId`. Only blocks inserted under the same `namespace` match. The returned arrays are the cache's own:
   * copy them before the cache changes.
   */
  match(ids: readonly number[], maxTokens = ids.length, conversationId?: string, namespace?: string): PrefixMatch {
    const found = this.#walk(ids, maxTokens, namespace);
    const wanted = Math.floor(Math.min(ids.length, maxTokens) / this.blockTokens);
    this.#hits += found.length;
    this.#misses += wanted - found.length;
    this.#own(found, conversationId);
    this.#touch(found);
    return { tokens: found.length * this.blockTokens, blocks: found.map((b) => b.data) };
  }

  /**
   * Keeps the KV of the whole blocks among the first `count` tokens of `ids`; `blockAt(first)` copies the KV of
   * tokens `first .. first + blockTokens` and is called only for blocks not cached yet. Evicts what the policy names
   * to make room; blocks that do not fit (the policy names none, or names one this insert relies on) are left out.
   * Returns how many blocks were added. A `namespace` keeps them apart: only lookups in the same one find them.
   */
  insert(
    ids: readonly number[],
    count: number,
    blockAt: (first: number) => KvArray,
    conversationId?: string,
    namespace?: string,
  ): number {
    const B = this.blockTokens;
    const chain = this.#walk(ids, count, namespace);
    const pinned = new Set(chain.map((b) => b.key));
    let parent = chain.at(-1)?.key;
    let added = 0;
    for (let i = chain.length; (i + 1) * B <= count; i++) {
      if (!this.#makeRoom(this.#blockBytes, pinned)) break;
      const key = blockKey(parent ?? rootOf(namespace), ids, i * B, B);
      const data = blockAt(i * B);
      if (data.length !== this.#blockElements)
        throw new Error(`a block of ${B} tokens holds ${this.#blockElements} values, not ${data.length}`);
      const block = this.#add({
        key,
        parent,
        tokens: Int32Array.from(ids.slice(i * B, (i + 1) * B)),
        data,
        tick: 0,
        anonymous: false,
        owners: [],
      });
      chain.push(block);
      pinned.add(key);
      parent = key;
      added++;
    }
    this.#own(chain, conversationId);
    this.#touch(chain);
    return added;
  }

  /** Whether any block is tagged with the conversation. */
  hasConversation(conversationId: string): boolean {
    for (const block of this.#blocks.values()) if (block.owners.has(conversationId)) return true;
    return false;
  }

  /** Drops the blocks of a conversation that nothing else uses; returns the bytes freed. */
  releaseConversation(conversationId: string): number {
    const before = this.#bytes;
    for (const block of [...this.#blocks.values()]) {
      if (!block.owners.delete(conversationId)) continue;
      if (block.owners.size === 0 && !block.anonymous && this.#blocks.has(block.key))
        this.#released += this.#remove(block);
    }
    return before - this.#bytes;
  }

  /** Changes the limit, evicting at once to meet a lower one. */
  resize(maxBytes: number): void {
    this.#maxBytes = Math.max(0, maxBytes);
    this.#makeRoom(0, new Set());
  }

  /** Drops every block (not counted as evictions). */
  clear(): void {
    for (const block of [...this.#blocks.values()])
      if (block.parent === undefined && this.#blocks.has(block.key)) this.#remove(block);
  }

  /**
   * The cache as bytes: layout, limit, counters and every block with its key, parent, owners, token ids and KV,
   * oldest use first. {@link PrefixCache.deserialize} gives back the same state.
   */
  serialize(): Uint8Array {
    const w = new ByteWriter();
    w.u32(MAGIC);
    w.u32(VERSION);
    w.u32(this.layout.numLayers);
    w.u32(this.layout.numKvHeads);
    w.u32(this.layout.headDim);
    w.u8(this.layout.dtype === 'float16' ? 1 : 0);
    w.u32(this.blockTokens);
    for (const n of [this.#maxBytes, this.#tick, this.#hits, this.#misses, this.#evictions, this.#released]) w.f64(n);
    const blocks = [...this.#blocks.values()].sort((a, b) => a.tick - b.tick);
    w.u32(blocks.length);
    for (const b of blocks) {
      w.str(b.key);
      w.str(b.parent ?? '');
      w.f64(b.tick);
      w.u8(b.anonymous ? 1 : 0);
      w.u32(b.owners.size);
      for (const o of [...b.owners].sort()) w.str(o);
      w.bytes(new Uint8Array(b.tokens.buffer, b.tokens.byteOffset, b.tokens.byteLength));
      w.bytes(new Uint8Array(b.data.buffer, b.data.byteOffset, b.data.byteLength));
    }
    return w.finish();
  }

  /**
   * Restores a cache from {@link PrefixCache.serialize}'s bytes. `policy` must be fresh: it is told of every block in
   * the recorded order of use, which rebuilds a recency policy's state exactly. Throws on bytes that are not a
   * cache, or that do not match `layout` when given.
   */
  static deserialize(bytes: Uint8Array, policy: CachePolicy, layout?: KvLayout): PrefixCache {
    const r = new ByteReader(bytes);
    if (r.u32() !== MAGIC) throw new Error('not a serialized prefix cache (bad magic)');
    const version = r.u32();
    if (version !== VERSION)
      throw new Error(`prefix cache format version ${version} is not supported (expected ${VERSION})`);
    const stored: KvLayout = {
      numLayers: r.u32(),
      numKvHeads: r.u32(),
      headDim: r.u32(),
      dtype: r.u8() === 1 ? 'float16' : 'float32',
    };
    if (
      layout &&
      (layout.numLayers !== stored.numLayers ||
        layout.numKvHeads !== stored.numKvHeads ||
        layout.headDim !== stored.headDim ||
        layout.dtype !== stored.dtype)
    ) {
      throw new Error(
        `the serialized cache is for another KV layout (${JSON.stringify(stored)}, this model has ${JSON.stringify(layout)})`,
      );
    }
    const blockTokens = r.u32();
    const [maxBytes, tick, hits, misses, evictions, released] = [
      r.f64(),
      r.f64(),
      r.f64(),
      r.f64(),
      r.f64(),
      r.f64(),
    ] as [number, number, number, number, number, number];
    const cache = new PrefixCache({ layout: stored, blockTokens, maxBytes, policy });
    const elements = blockElements(stored, blockTokens);
    const count = r.u32();
    for (let i = 0; i < count; i++) {
      const key = r.str();
      const parent = r.str() || undefined;
      const blockTick = r.f64();
      const anonymous = r.u8() === 1;
      const owners = Array.from({ length: r.u32() }, () => r.str());
      const tokens = new Int32Array(r.copy(blockTokens * 4).buffer);
      const raw = r.copy(blockBytes(stored, blockTokens)).buffer;
      const data = stored.dtype === 'float16' ? new Uint16Array(raw, 0, elements) : new Float32Array(raw, 0, elements);
      cache.#add({ key, parent, tokens, data, tick: blockTick, anonymous, owners });
    }
    for (const b of cache.#blocks.values()) {
      if (b.parent === undefined) continue;
      const p = cache.#blocks.get(b.parent);
      if (!p)
        throw new Error(
          `serialized prefix cache is inconsistent: block ${b.key} extends ${b.parent}, which is missing`,
        );
      p.children.add(b.key);
    }
    if (!r.done) throw new Error('serialized prefix cache has trailing bytes');
    cache.#tick = tick;
    cache.#hits = hits;
    cache.#misses = misses;
    cache.#evictions = evictions;
    cache.#released = released;
    return cache;
  }

  // The cached blocks that start `ids`, within `maxTokens`, verified token by token.
  #walk(ids: readonly number[], maxTokens: number, namespace: string | undefined): Block[] {
    const B = this.blockTokens;
    const limit = Math.min(ids.length, maxTokens);
    const found: Block[] = [];
    let parent: string | undefined;
    for (let i = 0; (i + 1) * B <= limit; i++) {
      const key = blockKey(parent ?? rootOf(namespace), ids, i * B, B);
      const block = this.#blocks.get(key);
      if (!block || block.parent !== parent || !sameTokens(block.tokens, ids, i * B)) break;
      found.push(block);
      parent = key;
    }
    return found;
  }

  #add(b: {
    key: string;
    parent: string | undefined;
    tokens: Int32Array;
    data: KvArray;
    tick: number;
    anonymous: boolean;
    owners: readonly string[];
  }): Block {
    const block: Block = {
      key: b.key,
      parent: b.parent,
      tokens: b.tokens,
      data: b.data,
      children: new Set(),
      owners: new Set(b.owners),
      anonymous: b.anonymous,
      tick: b.tick,
    };
    this.#blocks.set(block.key, block);
    if (block.parent !== undefined) this.#blocks.get(block.parent)?.children.add(block.key);
    this.#bytes += this.#blockBytes;
    this.#policy.onInsert(block.key, this.#blockBytes);
    return block;
  }

  // Drops a block and every block that extends it; returns how many went.
  #remove(block: Block): number {
    let n = 0;
    for (const child of [...block.children]) {
      const c = this.#blocks.get(child);
      if (c) n += this.#remove(c);
    }
    this.#blocks.delete(block.key);
    if (block.parent !== undefined) this.#blocks.get(block.parent)?.children.delete(block.key);
    this.#bytes -= this.#blockBytes;
    this.#policy.onRemove(block.key);
    return n + 1;
  }

  // Evicts until `bytes` more fit; false when they cannot (nothing evictable, or the policy names a pinned block).
  #makeRoom(bytes: number, pinned: ReadonlySet<string>): boolean {
    if (bytes > this.#maxBytes) return false;
    let stale = 0;
    while (this.#bytes + bytes > this.#maxBytes) {
      const key = this.#policy.victim();
      if (key === undefined) return false;
      const block = this.#blocks.get(key);
      if (!block) {
        // The policy remembers a key the cache no longer has: tell it again, and give up on a policy that loops.
        this.#policy.onRemove(key);
        if (++stale > STALE_VICTIMS) return false;
        continue;
      }
      if (pinned.has(key)) return false;
      this.#evictions += this.#remove(block);
    }
    return true;
  }

  #own(blocks: readonly Block[], conversationId: string | undefined): void {
    for (const b of blocks) {
      if (conversationId === undefined) b.anonymous = true;
      else b.owners.add(conversationId);
    }
  }

  // Leaf first, root last: the root ends up the most recently used.
  #touch(blocks: readonly Block[]): void {
    for (let i = blocks.length - 1; i >= 0; i--) {
      const b = blocks[i]!;
      b.tick = ++this.#tick;
      this.#policy.onAccess(b.key);
    }
  }
}

// What the first block of a namespace's chains hashes in as its parent: the same tokens under two namespaces have
// different keys, so a lookup in one never finds (or times) the other's blocks. A block key (hex) never looks like it.
function rootOf(namespace: string | undefined): string | undefined {
  return namespace === undefined ? undefined : `root:${namespace}`;
}

/** The key of the block of `ids[from .. from + count]` that follows the block keyed `parent`. */
export function blockKey(parent: string | undefined, ids: readonly number[], from: number, count: number): string {
  const h = createHash('sha256');
  h.update(parent ?? 'root');
  const tokens = Int32Array.from(ids.slice(from, from + count));
  h.update(new Uint8Array(tokens.buffer));
  return h.digest('hex').slice(0, 32);
}

function sameTokens(tokens: Int32Array, ids: readonly number[], from: number): boolean {
  for (let i = 0; i < tokens.length; i++) if (tokens[i] !== ids[from + i]) return false;
  return true;
}

class ByteWriter {
  readonly #chunks: Uint8Array[] = [];
  #length = 0;
  readonly #scratch = new DataView(new ArrayBuffer(8));

  u8(v: number): void {
    this.bytes(Uint8Array.of(v));
  }

  u32(v: number): void {
    this.#scratch.setUint32(0, v, true);
    this.bytes(new Uint8Array(this.#scratch.buffer.slice(0, 4)));
  }

  f64(v: number): void {
    this.#scratch.setFloat64(0, v, true);
    this.bytes(new Uint8Array(this.#scratch.buffer.slice(0, 8)));
  }

  str(s: string): void {
    const b = new TextEncoder().encode(s);
    this.u32(b.length);
    this.bytes(b);
  }

  bytes(b: Uint8Array): void {
    this.#chunks.push(b.slice());
    this.#length += b.length;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let at = 0;
    for (const c of this.#chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

class ByteReader {
  readonly #view: DataView;
  #at = 0;

  constructor(readonly data: Uint8Array) {
    this.#view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }

  get done(): boolean {
    return this.#at === this.data.length;
  }

  #need(n: number): void {
    if (this.#at + n > this.data.length) throw new Error('serialized prefix cache is truncated');
  }

  u8(): number {
    this.#need(1);
    return this.#view.getUint8(this.#at++);
  }

  u32(): number {
    this.#need(4);
    const v = this.#view.getUint32(this.#at, true);
    this.#at += 4;
    return v;
  }

  f64(): number {
    this.#need(8);
    const v = this.#view.getFloat64(this.#at, true);
    this.#at += 8;
    return v;
  }

  str(): string {
    const n = this.u32();
    return new TextDecoder().decode(this.copy(n));
  }

  /** The next `n` bytes, copied into their own (aligned) buffer. */
  copy(n: number): Uint8Array {
    this.#need(n);
    // Not `slice`: on a Node Buffer it is a view into the same memory, not a copy.
    const out = Uint8Array.prototype.slice.call(this.data, this.#at, this.#at + n);
    this.#at += n;
    return out;
  }
}
