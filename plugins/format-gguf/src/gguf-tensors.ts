import { closeSync, openSync, readSync } from 'node:fs';
import { GgufFormatError, type GgufFile, type GgufTensorInfo } from './gguf-reader.js';

/** ggml tensor types by number (ggml.h `enum ggml_type`), for reading and for naming unsupported ones. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  34: 'TQ1_0',
  35: 'TQ2_0',
  39: 'MXFP4',
};

/** Bytes per block and elements per block of the tensor types this reader can dequantize. */
const READABLE: Readonly<Record<number, { blockBytes: number; blockElems: number }>> = {
  0: { blockBytes: 4, blockElems: 1 }, // F32
  1: { blockBytes: 2, blockElems: 1 }, // F16
  8: { blockBytes: 34, blockElems: 32 }, // Q8_0: float16 scale + 32 int8
};

/** The ggml type numbers `readTensorF32` handles. */
export const GGML_READABLE_TYPES: readonly number[] = Object.keys(READABLE).map(Number);

/** The name of a ggml tensor type, for messages. */
export function ggmlTypeName(type: number): string {
  return GGML_TYPE_NAMES[type] ?? `type ${type}`;
}

/** Reads one tensor and returns its values as float32 (F16 widened, Q8_0 dequantized: d · q per block of 32). */
export function readTensorF32(file: GgufFile, tensor: GgufTensorInfo): Float32Array {
  const layout = READABLE[tensor.type];
  if (!layout) throw new Error(`tensor ${tensor.name} is ${ggmlTypeName(tensor.type)}, which cannot be read`);
  if (tensor.elements % layout.blockElems !== 0) {
    throw new Error(
      `tensor ${tensor.name}: ${tensor.elements} values do not fill ${ggmlTypeName(tensor.type)} blocks of ${layout.blockElems}`,
    );
  }
  const bytes = (tensor.elements / layout.blockElems) * layout.blockBytes;
  if (tensor.offset + bytes > file.fileSize)
    throw new GgufFormatError(file.path, `tensor ${tensor.name} runs past the end of the file`);
  const raw = Buffer.alloc(bytes);
  const fd = openSync(file.path, 'r');
  try {
    for (let done = 0; done < bytes; ) {
      const n = readSync(fd, raw, done, Math.min(bytes - done, 1 << 30), tensor.offset + done);
      if (n <= 0) throw new GgufFormatError(file.path, `short read in tensor ${tensor.name}`);
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  const out = new Float32Array(tensor.elements);
  switch (tensor.type) {
    case 0:
      for (let i = 0; i < out.length; i++) out[i] = raw.readFloatLE(i * 4);
      break;
    case 1:
      for (let i = 0; i < out.length; i++) out[i] = halfToFloat(raw.readUInt16LE(i * 2));
      break;
    case 8:
      for (let b = 0; b < out.length / 32; b++) {
        const base = b * 34;
        const d = halfToFloat(raw.readUInt16LE(base));
        for (let j = 0; j < 32; j++) out[b * 32 + j] = d * raw.readInt8(base + 2 + j);
      }
      break;
  }
  return out;
}

/** IEEE half → number (exact). */
export function halfToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}
