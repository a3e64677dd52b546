import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GgufFormatError, readGguf, type GgufFile } from '@nucleus/plugin-format-gguf';
import { ggufHeader, v, type GgufBytes } from './gguf-bytes.js';

const dir = mkdtempSync(join(tmpdir(), 'format-gguf-reader-'));
let files = 0;

function write(b: GgufBytes | Buffer): string {
  const path = join(dir, `f${files++}.gguf`);
  writeFileSync(path, Buffer.isBuffer(b) ? b : b.bytes());
  return path;
}

/** Reads a file the reader must refuse: a 400 GgufFormatError whose message matches `why`. */
function refusal(b: GgufBytes | Buffer, why: RegExp): GgufFormatError {
  const path = write(b);
  let read: GgufFile | undefined;
  try {
    read = readGguf(path);
  } catch (err) {
    assert.ok(err instanceof GgufFormatError, `not a GgufFormatError: ${String(err)}`);
    assert.match(err.message, why);
    assert.ok(err.message.startsWith(`${path}: `), err.message);
    assert.deepEqual([err.status, err.code], [400, 'unsupported_model']);
    return err;
  }
  assert.fail(`read ${read.tensors.length} tensors and ${read.metadata.size} metadata entries`);
}

const F32 = 0;
const Q4_K = 12;
const arch = (): [string, ReturnType<typeof v.str>] => ['general.architecture', v.str('llama')];

describe('format-gguf: the header reader refuses what the file cannot hold, naming it', () => {
  it('reads a well-formed header: metadata, tensor infos at aligned offsets, the data after the header', () => {
    const b = ggufHeader({
      metadata: [arch(), ['llama.block_count', v.u32(1)]],
      tensors: [
        { name: 'a', dims: [8], type: F32, offset: 0 },
        { name: 'b', dims: [4, 2], type: F32, offset: 32 },
      ],
    })
      .pad()
      .zeros(64);
    const f = readGguf(write(b));
    assert.deepEqual(
      f.tensors.map((t) => [t.name, t.dims, t.elements, t.offset - f.dataOffset]),
      [
        ['a', [8], 8, 0],
        ['b', [4, 2], 8, 32],
      ],
    );
    assert.equal(f.dataOffset + 64, f.fileSize);
  });

  it('a tensor or metadata count larger than the bytes left could hold', () => {
    refusal(
      ggufHeader({ tensorCount: 2n ** 40n }),
      /the header declares 1099511627776 tensors \(at least 26388279066624 bytes\), but only 8 bytes of the file remain/,
    );
    refusal(ggufHeader({ tensorCount: 2n ** 64n - 1n }), /declares 18446744073709551615 tensors/);
    refusal(
      ggufHeader({ kvCount: 3_000_000, metadata: [arch()] }),
      /the header declares 3000000 metadata entries \(at least 39000000 bytes\), but only 45 bytes/,
    );
    // Each count alone fits; together they do not.
    refusal(
      ggufHeader({ tensorCount: 1, kvCount: 2 }).zeros(30),
      /1 tensors and 2 metadata entries need at least 50 bytes, but only 30 bytes of the file remain/,
    );
  });

  it('an array or string length larger than the bytes left', () => {
    refusal(
      ggufHeader({ metadata: [['tokenizer.ggml.tokens', v.arr(8, 2n ** 32n, [v.str('a')])]] }),
      /metadata tokenizer\.ggml\.tokens declares 4294967296 string values \(at least 34359738368 bytes\), but only 9 bytes/,
    );
    refusal(
      ggufHeader({ metadata: [['tokenizer.ggml.scores', v.arr(6, 1000, [v.f32(1)])]] }),
      /metadata tokenizer\.ggml\.scores declares 1000 float32 values/,
    );
    refusal(
      ggufHeader({ metadata: [['general.name', v.str('tiny', 2n ** 60n)]] }),
      /metadata general\.name: a string of 1152921504606846976 bytes at byte 48 runs past the end of the file \(60 bytes\)/,
    );
    const longKey = ggufHeader({ kvCount: 1 }).str('k', 1e9).zeros(12);
    refusal(longKey, /the key of metadata entry 1: a string of 1000000000 bytes at byte 24 runs past the end/);
    refusal(
      ggufHeader({ tensorCount: 1 })
        .str('t', 2n ** 63n)
        .zeros(24),
      /the name of tensor 1: a string of 9223372036854775808 bytes/,
    );
  });

  it('a file that ends in the middle of the header', () => {
    const whole = ggufHeader({ metadata: [arch(), ['llama.block_count', v.u32(2)]] }).bytes();
    refusal(
      whole.subarray(0, whole.length - 2),
      /truncated: metadata llama\.block_count needs \d+ bytes, the file has \d+/,
    );
    refusal(whole.subarray(0, 2), /not a GGUF file \(2 bytes, too short for the magic\)/);
  });

  it('more than 4 dimensions, or dimensions whose product passes 2^53', () => {
    refusal(
      ggufHeader({ tensors: [{ name: 'blk.0.attn_q.weight', dims: [1, 1, 1, 1, 1], type: F32, offset: 0 }] }),
      /tensor blk\.0\.attn_q\.weight has 5 dimensions \(GGUF allows at most 4\)/,
    );
    refusal(
      ggufHeader({ tensors: [{ name: 't', dims: [2 ** 27, 2 ** 27], type: F32, offset: 0 }] }),
      /tensor t declares dimensions \[134217728, 134217728\], more than 2\^53 values/,
    );
    refusal(
      ggufHeader({ tensors: [{ name: 'huge', dims: [2n ** 64n - 1n], type: F32, offset: 0 }] }),
      /tensor huge declares dimensions \[18446744073709551615\], more than 2\^53 values/,
    );
    // A dim count whose dims are not there is a truncated file, not a loop.
    refusal(
      ggufHeader({ tensors: [{ name: 't', dims: [], nDims: 4, type: F32, offset: 0 }] }),
      /truncated: tensor t needs \d+ bytes/,
    );
  });

  it('a tensor or metadata key that appears twice', () => {
    refusal(
      ggufHeader({
        tensors: [
          { name: 'token_embd.weight', dims: [8], type: F32, offset: 0 },
          { name: 'token_embd.weight', dims: [8], type: F32, offset: 32 },
        ],
      }),
      /tensor token_embd\.weight appears twice/,
    );
    refusal(
      ggufHeader({ metadata: [arch(), ['general.architecture', v.str('qwen2')]] }),
      /metadata general\.architecture appears twice/,
    );
    // A corrupt name is quoted, so that its bytes cannot garble the message.
    refusal(
      ggufHeader({
        tensors: [
          { name: 'a\u0000\n', dims: [8], type: F32, offset: 0 },
          { name: 'a\u0000\n', dims: [8], type: F32, offset: 32 },
        ],
      }),
      /tensor "a\\u0000\\n" appears twice/,
    );
    refusal(
      ggufHeader({
        metadata: [
          ['', v.u32(1)],
          ['', v.u32(2)],
        ],
      }),
      /metadata "" appears twice/,
    );
  });

  it('tensor data that is misaligned, past the end of the file or overlapping another tensor', () => {
    refusal(
      ggufHeader({ tensors: [{ name: 'a', dims: [8], type: F32, offset: 4 }] })
        .pad()
        .zeros(64),
      /tensor a: data offset 4 is not a multiple of the alignment 32/,
    );
    const truncated = ggufHeader({
      tensors: [
        { name: 'a', dims: [8], type: F32, offset: 0 },
        { name: 'output.weight', dims: [8, 4], type: F32, offset: 32 },
      ],
    }).pad();
    const dataOffset = truncated.length;
    truncated.zeros(100);
    refusal(
      truncated,
      new RegExp(
        `tensor output\\.weight \\(F32 \\[8, 4\\], 128 bytes\\) ends at byte ${dataOffset + 160}, past the end of the file \\(${dataOffset + 100} bytes\\): the file is truncated`,
      ),
    );
    refusal(
      ggufHeader({ tensors: [{ name: 'far', dims: [8], type: F32, offset: 2n ** 63n }] }),
      /tensor far \(F32 \[8\], 32 bytes\) ends at byte \d{19}, past the end of the file/,
    );
    const dataStart = ggufHeader({
      tensors: [
        { name: 'a', dims: [16], type: F32, offset: 0 },
        { name: 'b', dims: [8], type: F32, offset: 32 },
      ],
    }).pad().length;
    refusal(
      ggufHeader({
        tensors: [
          { name: 'a', dims: [16], type: F32, offset: 0 },
          { name: 'b', dims: [8], type: F32, offset: 32 },
        ],
      })
        .pad()
        .zeros(96),
      new RegExp(
        `tensors a \\(bytes ${dataStart} to ${dataStart + 64}\\) and b \\(bytes ${dataStart + 32} to ${dataStart + 64}\\) overlap`,
      ),
    );
  });

  it('an unknown tensor type, or values that do not fill its blocks', () => {
    refusal(
      ggufHeader({ tensors: [{ name: 'blk.0.ffn_up.weight', dims: [32], type: 99, offset: 0 }] }),
      /tensor blk\.0\.ffn_up\.weight has unknown ggml type 99/,
    );
    refusal(
      ggufHeader({ tensors: [{ name: 'q', dims: [32, 2], type: Q4_K, offset: 0 }] }),
      /tensor q: \[32, 2\] is 64 values, which do not fill Q4_K blocks of 256/,
    );
  });

  it('an unknown value type, arrays nested too deep, an unknown version or byte order, a bad alignment', () => {
    refusal(ggufHeader({ metadata: [['general.x', v.typed(13)]] }), /metadata general\.x has unknown value type 13/);
    refusal(
      ggufHeader({ metadata: [['general.x', v.arr(42, 0)]] }),
      /metadata general\.x is an array of unknown value type 42/,
    );
    let nested = v.arr(4, 0);
    for (let i = 0; i < 4; i++) nested = v.arr(9, 1, [nested]);
    refusal(
      ggufHeader({ metadata: [['general.deep', nested]] }),
      /metadata general\.deep nests arrays more than 4 deep/,
    );
    refusal(ggufHeader({ version: 4 }), /GGUF version 4 \(only versions 2 and 3 are supported\)/);
    refusal(
      ggufHeader({ version: 0x03000000 }),
      /a big-endian GGUF \(version 3\); only little-endian files are supported/,
    );
    refusal(
      ggufHeader({ metadata: [['general.alignment', v.u32(48)]] }),
      /general\.alignment 48 is not a power of two/,
    );
  });
});
