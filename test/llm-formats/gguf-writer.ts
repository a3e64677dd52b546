// GGUF files for tests: the plugin's writer, and tensor bytes of the simple types from float values.
import { float16Bits, float16FromBits } from '@nucleus/sdk/onnx';

export { ggufMeta as m, writeGguf, type Meta, type RawTensor } from '@nucleus/plugin-format-gguf';

/** F32 tensor bytes. */
export function f32Bytes(values: Float32Array): Uint8Array {
  return new Uint8Array(values.buffer.slice(values.byteOffset, values.byteOffset + values.byteLength));
}

/** F16 tensor bytes, and the float32 values they round to. */
export function f16Bytes(values: Float32Array): { bytes: Uint8Array; values: Float32Array } {
  const bits = Uint16Array.from(values, (v) => float16Bits(v));
  const b = Buffer.alloc(bits.length * 2);
  bits.forEach((x, i) => b.writeUInt16LE(x, i * 2));
  return { bytes: new Uint8Array(b), values: Float32Array.from(bits, (x) => float16FromBits(x)) };
}

/** Q8_0 tensor bytes (blocks of 32: float16 scale d = max|x|/127, then round(x/d) as int8), and the values d·q. */
export function q8Bytes(values: Float32Array): { bytes: Uint8Array; values: Float32Array } {
  if (values.length % 32 !== 0) throw new Error('Q8_0 needs a multiple of 32 values');
  const blocks = values.length / 32;
  const b = Buffer.alloc(blocks * 34);
  const out = new Float32Array(values.length);
  for (let k = 0; k < blocks; k++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(values[k * 32 + j]!));
    const dBits = float16Bits(amax / 127);
    const d = float16FromBits(dBits);
    b.writeUInt16LE(dBits, k * 34);
    for (let j = 0; j < 32; j++) {
      const q = d === 0 ? 0 : Math.max(-127, Math.min(127, Math.round(values[k * 32 + j]! / d)));
      b.writeInt8(q, k * 34 + 2 + j);
      out[k * 32 + j] = d * q;
    }
  }
  return { bytes: new Uint8Array(b), values: out };
}
