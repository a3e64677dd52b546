import assert from 'node:assert/strict';
import {
  GraphBuilder,
  bfloat16Bits,
  bfloat16FromBits,
  createTensor,
  float16Bits,
  float16FromBits,
  packInt4,
  tensorToNumbers,
  unpackInt4,
} from '@nucleus/sdk/onnx';
import { pseudoRandom } from './reference.js';
import { f32, runModel } from './ort-session.js';

// Values that exercise rounding ties, subnormals, overflow and the extremes of each format.
const SPECIAL = [
  0,
  -0,
  1,
  -2,
  0.5,
  0.1,
  1 / 3,
  65504,
  65520,
  70000,
  1e-8,
  6e-8,
  2 ** -24,
  3 * 2 ** -25,
  2 ** -14,
  1 + 2 ** -11,
  1 + 3 * 2 ** -11,
  3.4e38,
  -Infinity,
  1e-40,
];

describe('float16, bfloat16 and int4 storage', () => {
  it('float16Bits and bfloat16Bits round exactly as ORT Cast does', async () => {
    const values = [...SPECIAL, ...Array.from(pseudoRandom(400, 51), (v, i) => v * 2 ** ((i % 40) - 26))];
    const g = new GraphBuilder('cast16');
    const x = g.input('x', 'float32', [values.length]);
    g.output(g.ops.cast(x, 'float16'), 'float16', [values.length], { name: 'h' });
    // onnxruntime-node cannot hand out a bfloat16 tensor ("Unsupported data type: 16"); widening back to
    // float32 is exact, so compare the rounded values instead of the bits.
    g.output(g.ops.cast(g.ops.cast(x, 'bfloat16'), 'float32'), 'float32', [values.length], { name: 'bf' });
    const out = await runModel(g.toModel(), { x: f32(values, [values.length]) });
    const f32values = Float32Array.from(values);
    assert.deepEqual(Array.from(out.h!.data as Uint16Array), Array.from(f32values, float16Bits));
    assert.deepEqual(
      Array.from(out.bf!.data as Float32Array),
      Array.from(f32values, (v) => bfloat16FromBits(bfloat16Bits(v))),
    );
  });

  it('a float16 initializer made from plain numbers reads back in ORT as the rounded values', async () => {
    const t = createTensor('w', [1, -2, 0.1, 65504, 1e-8, 70000], [6], 'float16');
    assert.ok(t.data instanceof Uint16Array);
    const g = new GraphBuilder('f16');
    g.output(g.ops.cast(g.addInitializer(t), 'float32'), 'float32', [6], { name: 'y' });
    const out = await runModel(g.toModel(), {});
    const expected = [1, -2, 0.0999755859375, 65504, 0, Infinity];
    assert.deepEqual(Array.from(out.y!.data as Float32Array), expected);
    assert.deepEqual(Array.from(tensorToNumbers(t)), expected);
    assert.equal(float16FromBits(0x0001), 2 ** -24);
    assert.ok(Number.isNaN(float16FromBits(0x7e00)));
    assert.equal(bfloat16FromBits(bfloat16Bits(1.00390625)), 1, 'a tie rounds to even');
  });

  it('int4 packs two per byte, low nibble first, and ORT DequantizeLinear (opset 21) reads it', async () => {
    const values = [-8, 7, -1, 0, 3];
    const packed = packInt4(values);
    assert.deepEqual(Array.from(packed), [0x78, 0x0f, 0x03]);
    assert.deepEqual(Array.from(unpackInt4(packed, 5, true)), values);
    assert.deepEqual(Array.from(unpackInt4(packed, 5, false)), [8, 7, 15, 0, 3]);

    const q = createTensor('q', values, [5], 'int4');
    assert.deepEqual(Array.from(tensorToNumbers(q)), values);
    const g = new GraphBuilder('dq', { opset: 21 });
    const y = g.node('DequantizeLinear', [g.addInitializer(q), g.scalar(0.5)]);
    g.output(y, 'float32', [5], { name: 'y' });
    const model = g.toModel();
    assert.equal(model.irVersion, 10);
    const out = await runModel(model, {});
    assert.deepEqual(
      Array.from(out.y!.data as Float32Array),
      values.map((v) => v * 0.5),
    );
  });
});
