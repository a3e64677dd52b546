// Mutated copies of real GGUF headers: the reader returns or throws GgufFormatError, nothing else, and never loops
// or allocates by a count it was given (a hostile count would hang this test or run it out of memory).
import assert from 'node:assert/strict';
import { closeSync, openSync, readdirSync, readSync, truncateSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { SeededRandom } from '@nucleus/sdk';
import { checkGgufLimits, GgufFormatError, readGguf } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { ORACLE_DIR, requireOracle, requireStories, STORIES_DIR } from './llm-module.js';

/** A field of a header: where it is, how wide, what it holds. */
interface Field {
  at: number;
  size: 4 | 8;
  what: 'count' | 'length' | 'type' | 'dims' | 'dim' | 'offset' | 'value';
}

// Walks a well-formed header and lists its counts, lengths, types, dims and offsets: where a mutation hurts most.
function fieldsOf(head: Buffer): Field[] {
  const fields: Field[] = [];
  let p = 8;
  const u64 = (what: Field['what']): number => {
    fields.push({ at: p, size: 8, what });
    p += 8;
    return Number(head.readBigUInt64LE(p - 8));
  };
  const u32 = (what: Field['what']): number => {
    fields.push({ at: p, size: 4, what });
    p += 4;
    return head.readUInt32LE(p - 4);
  };
  const str = (): void => {
    const n = u64('length');
    p += n;
  };
  const WIDTH: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  const value = (type: number, inArray = false): void => {
    if (type === 8) return str();
    if (type === 9) {
      const elem = u32('type');
      const n = u64('count');
      for (let i = 0; i < n; i++) value(elem, true);
      return;
    }
    // Integer values of their own (block_count, context_length …), not the elements of token arrays.
    if (!inArray && (type === 4 || type === 5 || type === 10))
      fields.push({ at: p, size: WIDTH[type] === 8 ? 8 : 4, what: 'value' });
    p += WIDTH[type]!;
  };
  const tensors = u64('count');
  const kvs = u64('count');
  for (let i = 0; i < kvs; i++) {
    str();
    value(u32('type'));
  }
  for (let i = 0; i < tensors; i++) {
    str();
    const nDims = u32('dims');
    for (let d = 0; d < nDims; d++) u64('dim');
    u32('type');
    u64('offset');
  }
  return fields;
}

const HUGE_64 = [2n ** 64n - 1n, 2n ** 63n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 40n, 2n ** 32n, 3_000_000n];
const HUGE_32 = [0xffffffff, 0x80000000, 3_000_000, 65_536, 99, 13, 5, 9, 0];

/** One mutated copy of `head` (a file of `size` bytes): flipped bytes, huge fields, a cut, or several at once. */
function mutate(
  head: Buffer,
  size: number,
  fields: ReadonlyMap<Field['what'], Field[]>,
  rng: SeededRandom,
): { bytes: Buffer; size: number } {
  const groups = [...fields.values()];
  const bytes = Buffer.from(head);
  let out = size;
  const steps = 1 + rng.int(3);
  for (let s = 0; s < steps; s++) {
    const kind = rng.int(4);
    if (kind === 0) {
      for (let k = 1 + rng.int(8); k > 0; k--) bytes[rng.int(bytes.length)] = rng.int(256);
    } else if (kind === 1 || kind === 2) {
      // A kind of field first: string lengths far outnumber the rest.
      const group = groups[rng.int(groups.length)]!;
      const f = group[rng.int(group.length)]!;
      if (f.size === 8) {
        const old = bytes.readBigUInt64LE(f.at);
        const pick = rng.int(HUGE_64.length + 3);
        const v =
          pick < HUGE_64.length ? HUGE_64[pick]! : [0n, old + 1n, old > 0n ? old - 1n : 1n][pick - HUGE_64.length]!;
        bytes.writeBigUInt64LE(v & (2n ** 64n - 1n), f.at);
      } else {
        bytes.writeUInt32LE(rng.next() < 0.8 ? HUGE_32[rng.int(HUGE_32.length)]! : rng.int(2 ** 32), f.at);
      }
    } else {
      // Mostly inside the header, sometimes inside the tensor data.
      out = Math.min(out, rng.next() < 0.7 ? rng.int(head.length) : rng.int(size));
    }
  }
  return { bytes: bytes.subarray(0, Math.min(out, bytes.length)), size: out };
}

function headerOf(path: string): { head: Buffer; size: number } {
  const file = readGguf(path);
  const head = Buffer.alloc(file.dataOffset);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  return { head, size: file.fileSize };
}

describe('GGUF header fuzzing', function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = tempDir('gguf-fuzz');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('every real model file passes the reader and checkGgufLimits', function () {
    requireStories(this);
    requireOracle(this);
    const paths = [
      ...readdirSync(STORIES_DIR)
        .filter((n) => n.endsWith('.gguf'))
        .map((n) => join(STORIES_DIR, n)),
      ...readdirSync(ORACLE_DIR)
        .filter((n) => n.endsWith('.gguf'))
        .map((n) => join(ORACLE_DIR, n)),
    ];
    assert.ok(paths.length >= 18, paths.join(', '));
    for (const path of paths) checkGgufLimits(readGguf(path));
  });

  for (const [label, locate, require] of [
    ['stories260K.gguf', () => join(STORIES_DIR, 'stories260K.gguf'), requireStories],
    ['quant-zoo-Q4_K_M.gguf', () => join(ORACLE_DIR, 'quant-zoo-Q4_K_M.gguf'), requireOracle],
  ] as const) {
    it(`300 mutated copies of ${label}'s header: each is read or refused with a GgufFormatError`, function () {
      require(this);
      const { head, size } = headerOf(locate());
      const fields = new Map<Field['what'], Field[]>();
      for (const f of fieldsOf(head)) fields.set(f.what, [...(fields.get(f.what) ?? []), f]);
      assert.deepEqual([...fields.keys()].sort(), ['count', 'dim', 'dims', 'length', 'offset', 'type', 'value']);
      const rng = new SeededRandom(label.length * 7919);
      const path = join(dir, label);
      const outcomes = new Map<string, number>();
      for (let i = 0; i < 300; i++) {
        const copy = mutate(head, size, fields, rng);
        writeFileSync(path, copy.bytes);
        // The tensor data stay a hole of zeros: the file has its real size without writing it.
        if (copy.size > copy.bytes.length) truncateSync(path, copy.size);
        let outcome = 'read';
        try {
          const file = readGguf(path);
          checkGgufLimits(file);
        } catch (err) {
          if (!(err instanceof GgufFormatError)) {
            assert.fail(`copy ${i} threw ${err instanceof Error ? err.stack : String(err)}`);
          }
          assert.ok(err.message.startsWith(`${path}: `), err.message);
          assert.doesNotMatch(err.message, /undefined|NaN|\[object /, `copy ${i}`);
          outcome = err.message
            .slice(path.length + 2)
            .replace(/\d+/g, 'N')
            .slice(0, 40);
        }
        outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
      }
      // The mutations reach past the magic: many different refusals, and some copies still read.
      assert.ok(outcomes.size >= 8, JSON.stringify([...outcomes]));
      assert.ok((outcomes.get('read') ?? 0) > 0, JSON.stringify([...outcomes]));
    });
  }
});
