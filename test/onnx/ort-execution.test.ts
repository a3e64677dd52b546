import assert from 'node:assert/strict';
import { GraphBuilder, attr, createTensor, type DType, type OnnxTensor } from '@nucleus/sdk/onnx';
import { assertClose, conv2d, layerNormRows, matMul, pseudoRandom, softmaxRows } from './reference.js';
import { OrtTensor, f32, i64, loadSession, runModel } from './ort-session.js';

// Abramowitz & Stegun 7.1.26 is only good to 1.5e-7; a series/continued fraction is exact enough here.
function erf(x: number): number {
  const t = Math.abs(x);
  let sum = t;
  let term = t;
  for (let n = 1; n < 60; n++) {
    term *= (-t * t) / n;
    sum += term / (2 * n + 1);
  }
  return Math.sign(x) * Math.min(1, (2 / Math.sqrt(Math.PI)) * sum);
}

describe('graphs from GraphBuilder run in onnxruntime-node', () => {
  it('MatMul + Add + Relu over a symbolic batch matches a reference', async () => {
    const g = new GraphBuilder('mlp');
    const x = g.input('x', 'float32', ['batch', 5]);
    const wData = pseudoRandom(15, 1);
    const bData = pseudoRandom(3, 2);
    const y = g.ops.relu(g.ops.add(g.ops.matMul(x, g.initializer('w', wData, [5, 3])), g.initializer('b', bData, [3])));
    g.output(y, 'float32', ['batch', 3], { name: 'y' });
    const xData = pseudoRandom(20, 3);
    const out = await runModel(g.toModel(), { x: f32(xData, [4, 5]) });

    const ref = matMul(xData, wData, 4, 5, 3).map((v, i) => Math.max(0, v + bData[i % 3]!));
    assert.deepEqual(out.y!.dims, [4, 3]);
    assertClose(out.y!.data as Float32Array, ref, 1e-5, 'y');
    assert.ok(ref.some((v) => v === 0) && ref.some((v) => v > 0.1), 'the data exercises both sides of the ReLU');
  });

  it('Softmax and ArgMax match a reference', async () => {
    const g = new GraphBuilder('softmax');
    const x = g.input('x', 'float32', [3, 6]);
    g.output(g.ops.softmax(x, -1), 'float32', [3, 6], { name: 'p' });
    g.output(g.ops.argMax(x, { axis: 1, keepdims: false }), 'int64', [3], { name: 'k' });
    const xData = pseudoRandom(18, 4).map((v) => v * 5);
    const out = await runModel(g.toModel(), { x: f32(xData, [3, 6]) });

    assertClose(out.p!.data as Float32Array, softmaxRows(xData, 3, 6), 1e-5, 'softmax');
    const expected = [0, 1, 2].map((r) => {
      const row = Array.from(xData.slice(r * 6, r * 6 + 6));
      return BigInt(row.indexOf(Math.max(...row)));
    });
    assert.deepEqual(Array.from(out.k!.data as BigInt64Array), expected);
  });

  it('Conv with stride, padding and groups matches a reference', async () => {
    for (const group of [1, 2]) {
      const g = new GraphBuilder('conv');
      const x = g.input('x', 'float32', [2, 4, 7, 6]);
      const wDims = [6, 4 / group, 3, 3];
      const wData = pseudoRandom(6 * (4 / group) * 9, 5 + group);
      const bData = pseudoRandom(6, 6);
      const y = g.ops.conv(x, g.initializer('w', wData, wDims), g.initializer('b', bData, [6]), {
        kernelShape: [3, 3],
        strides: [2, 2],
        pads: [1, 1, 1, 1],
        group,
      });
      g.output(y, 'float32', [2, 6, 4, 3], { name: 'y' });
      const xData = pseudoRandom(2 * 4 * 7 * 6, 7);
      const out = await runModel(g.toModel(), { x: f32(xData, [2, 4, 7, 6]) });
      const ref = conv2d(xData, [2, 4, 7, 6], wData, wDims, bData, { stride: 2, pad: 1, group });
      assert.deepEqual(out.y!.dims, ref.dims);
      assertClose(out.y!.data as Float32Array, ref.data, 1e-5, `conv group ${group}`);
    }
  });

  it('LayerNormalization (opset 17) matches a reference', async () => {
    const g = new GraphBuilder('ln');
    const x = g.input('x', 'float32', [3, 8]);
    const scale = pseudoRandom(8, 8);
    const bias = pseudoRandom(8, 9);
    const y = g.ops.layerNormalization(x, g.initializer('scale', scale, [8]), g.initializer('bias', bias, [8]), {
      epsilon: 1e-3,
    });
    g.output(y, 'float32', [3, 8], { name: 'y' });
    const xData = pseudoRandom(24, 10).map((v, i) => v * (i % 5) + i / 10);
    const out = await runModel(g.toModel(), { x: f32(xData, [3, 8]) });
    assertClose(out.y!.data as Float32Array, layerNormRows(xData, 3, 8, scale, bias, 1e-3), 1e-5, 'layernorm');
  });

  it('Gather looks up embedding rows by int64 ids', async () => {
    const g = new GraphBuilder('gather');
    const ids = g.input('ids', 'int64', ['batch', 'seq']);
    const table = pseudoRandom(6 * 4, 11);
    g.output(g.ops.gather(g.initializer('table', table, [6, 4]), ids), 'float32', ['batch', 'seq', 4], { name: 'e' });
    const idData = [5, 0, 3, 3, 1, 2];
    const out = await runModel(g.toModel(), { ids: i64(idData, [2, 3]) });
    assert.deepEqual(out.e!.dims, [2, 3, 4]);
    assertClose(
      out.e!.data as Float32Array,
      idData.flatMap((id) => Array.from(table.slice(id * 4, id * 4 + 4))),
      0,
      'gather',
    );
  });

  it('Gemm takes float attributes; a whole-number alpha given as a plain number is an INT and ORT refuses it', async () => {
    const build = (alpha: Parameters<typeof attr.float>[0] | ReturnType<typeof attr.float>) => {
      const g = new GraphBuilder('gemm');
      const a = g.input('a', 'float32', [2, 3]);
      const b = g.initializer('b', pseudoRandom(12, 12), [4, 3]);
      const y = g.node('Gemm', [a, b], { alpha, transB: 1 });
      g.output(y, 'float32', [2, 4], { name: 'y' });
      return g.toModel();
    };
    const aData = pseudoRandom(6, 13);
    const out = await runModel(build(attr.float(2)), { a: f32(aData, [2, 3]) });
    const bT = pseudoRandom(12, 12);
    const b = new Float32Array(12);
    for (let i = 0; i < 4; i++) for (let j = 0; j < 3; j++) b[j * 4 + i] = bT[i * 3 + j]!;
    assertClose(
      out.y!.data as Float32Array,
      matMul(aData, b, 2, 3, 4).map((v) => 2 * v),
      1e-5,
      'gemm',
    );

    await assert.rejects(loadSession(build(2)), /Mismatched attribute type in 'Gemm : alpha'/);
  });

  it('Reshape, Transpose, Unsqueeze and Squeeze move data as numpy would', async () => {
    const g = new GraphBuilder('shapes');
    const x = g.input('x', 'float32', [2, 6]);
    const r = g.ops.reshape(x, [0, 3, -1]); // [2,3,2]
    const t = g.ops.transpose(r, [2, 0, 1]); // [2,2,3]
    const u = g.ops.unsqueeze(t, [1]); // [2,1,2,3]
    g.output(u, 'float32', [2, 1, 2, 3], { name: 'u' });
    g.output(g.ops.squeeze(u, [1]), 'float32', [2, 2, 3], { name: 's' });
    const xData = Array.from({ length: 12 }, (_, i) => i);
    const out = await runModel(g.toModel(), { x: f32(xData, [2, 6]) });
    // r[a][b][c] = x[a][b*2+c]; t[c][a][b] = r[a][b][c]
    const expected: number[] = [];
    for (let c = 0; c < 2; c++)
      for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) expected.push(a * 6 + b * 2 + c);
    assert.deepEqual(out.u!.dims, [2, 1, 2, 3]);
    assert.deepEqual(Array.from(out.u!.data as Float32Array), expected);
    assert.deepEqual(out.s!.dims, [2, 2, 3]);
  });

  it('initializers of every ORT-supported dtype reach the output unchanged', async () => {
    const tensors: OnnxTensor[] = [
      createTensor('f32', new Float32Array([1.5, -3]), [2]),
      createTensor('f64', new Float64Array([Math.PI, -1e300]), [2]),
      createTensor('f16', new Uint16Array([0x3c00, 0xc000, 0x3800]), [3], 'float16'),
      createTensor('i8', new Int8Array([-128, 127]), [2]),
      createTensor('u8', new Uint8Array([0, 255]), [2]),
      createTensor('i16', new Int16Array([-32768, 32767]), [2]),
      createTensor('u16', new Uint16Array([65535, 1]), [2]),
      createTensor('i32', new Int32Array([-2147483648, 2147483647]), [2]),
      createTensor('u32', new Uint32Array([4294967295, 0]), [2]),
      createTensor('i64', new BigInt64Array([-9223372036854775808n, 9223372036854775807n]), [2]),
      createTensor('u64', new BigUint64Array([18446744073709551615n, 0n]), [2]),
      createTensor('b', [true, false], [2]),
      createTensor('str', ['hello', 'wörld'], [2], 'string'),
    ];
    const g = new GraphBuilder('dtypes');
    for (const t of tensors)
      g.output(g.ops.identity(g.addInitializer(t)), t.dtype as DType, t.dims, { name: `${t.name}_out` });
    const out = await runModel(g.toModel(), {});
    for (const t of tensors) {
      const o = out[`${t.name}_out`]!;
      assert.deepEqual(o.dims, t.dims, t.name);
      if (t.dtype === 'float16') {
        // onnxruntime-node on Node 20 hands float16 back as raw bits; where a Float16Array exists it may give numbers.
        const expected = o.data instanceof Uint16Array ? [0x3c00, 0xc000, 0x3800] : [1, -2, 0.5];
        assert.deepEqual(Array.from(o.data as ArrayLike<number>), expected, t.name);
      } else if (t.dtype === 'bool') {
        assert.deepEqual(Array.from(o.data as ArrayLike<unknown>).map(Boolean), [true, false], t.name);
      } else {
        assert.deepEqual(Array.from(o.data as ArrayLike<unknown>), Array.from(t.data as ArrayLike<unknown>), t.name);
      }
    }
  });

  it('gelu, reduceMean and com.microsoft ops run at opsets 17 and 18', async () => {
    for (const opset of [17, 18]) {
      const g = new GraphBuilder('misc', { opset });
      const x = g.input('x', 'float32', [2, 5]);
      g.output(g.ops.gelu(x), 'float32', [2, 5], { name: 'gelu' });
      g.output(g.ops.reduceMean(x, [1], false), 'float32', [2], { name: 'mean' });
      g.output(g.node('Gelu', [x], {}, { domain: 'com.microsoft' }), 'float32', [2, 5], { name: 'ms_gelu' });
      const model = g.toModel({ opsets: { 'com.microsoft': 1 } });
      assert.equal(model.opsets[''], opset);
      const xData = pseudoRandom(10, 14).map((v) => v * 3);
      const out = await runModel(model, { x: f32(xData, [2, 5]) });
      const gelu = Array.from(xData, (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)));
      assertClose(out.gelu!.data as Float32Array, gelu, 1e-5, `gelu opset ${opset}`);
      assertClose(out.ms_gelu!.data as Float32Array, gelu, 1e-5, 'com.microsoft Gelu');
      const means = [0, 1].map((r) => xData.slice(r * 5, r * 5 + 5).reduce((a, b) => a + b, 0) / 5);
      assertClose(out.mean!.data as Float32Array, means, 1e-5, `reduceMean opset ${opset}`);
    }
  });

  it('an If whose branches read the enclosing graph picks the branch by its condition', async () => {
    const g = new GraphBuilder('branch');
    const cond = g.input('cond', 'bool', []);
    const x = g.input('x', 'float32', [3]);
    const thenB = new GraphBuilder('then', { outerScope: g });
    thenB.output(thenB.ops.mul(x, 2), 'float32', [3]);
    const elseB = new GraphBuilder('else', { outerScope: g });
    elseB.output(elseB.ops.add(x, 1), 'float32', [3]);
    g.output(g.node('If', [cond], { then_branch: thenB.toGraph(), else_branch: elseB.toGraph() }), 'float32', [3], {
      name: 'y',
    });
    const model = g.toModel();
    for (const [c, expected] of [
      [true, [2, -4, 1]],
      [false, [2, -1, 1.5]],
    ] as const) {
      const out = await runModel(model, { cond: new OrtTensor('bool', [c], []), x: f32([1, -2, 0.5], [3]) });
      assert.deepEqual(Array.from(out.y!.data as Float32Array), expected);
    }
  });
});
