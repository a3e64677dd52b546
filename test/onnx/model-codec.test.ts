import assert from 'node:assert/strict';
import protobuf from 'protobufjs';
import {
  GraphBuilder,
  OnnxModel,
  attr,
  createTensor,
  decodeModel,
  emptyGraph,
  type OnnxTensor,
} from '@nucleus/sdk/onnx';

function roundTrip(model: OnnxModel): OnnxModel {
  return decodeModel(model.encode());
}

describe('ONNX model encode → decode', () => {
  it('keeps model fields, opsets, metadata and graph structure', () => {
    const g = new GraphBuilder('rt', { docString: 'graph doc' });
    const x = g.input('x', 'float32', ['batch', 4, null], { docString: 'the input' });
    const s = g.input('s', 'int64', []);
    const y = g.ops.relu(x, { name: 'act' });
    g.output(y, 'float32', ['batch', 4, null], { name: 'y', docString: 'out' });
    g.output(g.ops.identity(s), 'int64', []);
    g.valueInfo(y, 'float32');
    const model = g.toModel({
      opsets: { 'com.microsoft': 1, 'ai.onnx.ml': 3 },
      producer: 'nucleus',
      producerVersion: '0.1.0',
      docString: 'model doc',
      metadata: { author: 'tests', license: 'none' },
      modelVersion: 7,
      domain: 'ai.nucleus.test',
    });
    const back = roundTrip(model);

    assert.equal(back.irVersion, 8);
    assert.deepEqual(back.opsets, { '': 17, 'com.microsoft': 1, 'ai.onnx.ml': 3 });
    assert.equal(back.producerName, 'nucleus');
    assert.equal(back.producerVersion, '0.1.0');
    assert.equal(back.docString, 'model doc');
    assert.equal(back.modelVersion, 7);
    assert.equal(back.domain, 'ai.nucleus.test');
    assert.deepEqual(back.metadataProps, { author: 'tests', license: 'none' });
    assert.equal(back.graph.name, 'rt');
    assert.equal(back.graph.docString, 'graph doc');
    assert.deepEqual(back.graph.inputs, [
      { name: 'x', type: { kind: 'tensor', dtype: 'float32', shape: ['batch', 4, null] }, docString: 'the input' },
      // A scalar keeps an empty (known, rank-0) shape; it must not turn into "unknown rank".
      { name: 's', type: { kind: 'tensor', dtype: 'int64', shape: [] } },
    ]);
    assert.deepEqual(back.graph.outputs[0], {
      name: 'y',
      type: { kind: 'tensor', dtype: 'float32', shape: ['batch', 4, null] },
      docString: 'out',
    });
    assert.deepEqual(back.graph.valueInfo, [{ name: 'y', type: { kind: 'tensor', dtype: 'float32' } }]);
    assert.deepEqual(
      back.graph.nodes.map((n) => [n.name, n.opType, n.domain, n.inputs, n.outputs]),
      [
        ['act', 'Relu', '', ['x'], ['y']],
        ['Identity', 'Identity', '', ['s'], ['Identity_out']],
      ],
    );
  });

  it('keeps every attribute kind, including ints beyond 2^53 and nested graphs', () => {
    const body = new GraphBuilder('then_body');
    const one = body.constant([1], [1]);
    body.output(body.ops.identity(one), 'float32', [1]);
    const g = new GraphBuilder('attrs');
    const c = g.input('c', 'bool', []);
    const tensor = createTensor('t', new Float32Array([1.5, -2]), [2]);
    const out = g.node(
      'Custom',
      [c, null],
      {
        f: attr.float(2),
        i: 3,
        big: 9007199254740993n,
        neg: -4,
        s: 'héllo',
        t: tensor,
        g: body.toGraph(),
        floats: [0.5, 1.25],
        ints: [1, -2, 3],
        intsWhole: attr.floats([1, 2]),
        strings: ['a', 'b'],
        tensors: attr.tensors([tensor]),
        graphs: attr.graphs([body.toGraph()]),
        flag: true,
      },
      { domain: 'ai.nucleus.test' },
    );
    g.output(out, 'float32', [1]);
    const back = roundTrip(g.toModel({ opsets: { 'ai.nucleus.test': 1 } }));
    const node = back.graph.nodes[0]!;
    assert.deepEqual(node.inputs, ['c', ''], 'an omitted optional input stays an empty name');
    const a = node.attributes;
    assert.deepEqual(a.f, { type: 'float', value: 2 });
    assert.deepEqual(a.i, { type: 'int', value: 3 });
    assert.deepEqual(a.big, { type: 'int', value: 9007199254740993n });
    assert.deepEqual(a.neg, { type: 'int', value: -4 });
    assert.deepEqual(a.s, { type: 'string', value: 'héllo' });
    assert.deepEqual(a.floats, { type: 'floats', value: [0.5, 1.25] });
    assert.deepEqual(a.ints, { type: 'ints', value: [1, -2, 3] });
    assert.deepEqual(a.intsWhole, { type: 'floats', value: [1, 2] });
    assert.deepEqual(a.strings, { type: 'strings', value: ['a', 'b'] });
    assert.deepEqual(a.flag, { type: 'int', value: 1 });
    assert.equal(a.t?.type, 'tensor');
    assert.deepEqual(a.t?.type === 'tensor' && Array.from(a.t.value.data as Float32Array), [1.5, -2]);
    assert.equal(a.tensors?.type === 'tensors' && a.tensors.value.length, 1);
    assert.equal(a.g?.type === 'graph' && a.g.value.name, 'then_body');
    assert.equal(a.g?.type === 'graph' && a.g.value.initializers.length, 1);
    assert.equal(a.graphs?.type === 'graphs' && a.graphs.value[0]!.nodes[0]!.opType, 'Identity');
  });

  it('keeps tensor data of every dtype bit for bit', () => {
    const tensors: OnnxTensor[] = [
      createTensor('f32', new Float32Array([1.5, -0, Number.NaN, 3.4e38]), [2, 2]),
      createTensor('f64', new Float64Array([Math.PI]), []),
      createTensor('f16', new Uint16Array([0x3c00, 0xc000, 0x7e00]), [3], 'float16'),
      createTensor('bf16', new Uint16Array([0x3f80]), [1], 'bfloat16'),
      createTensor('i8', new Int8Array([-128, 127, 0]), [3]),
      createTensor('u8', new Uint8Array([255, 1]), [2]),
      createTensor('i16', new Int16Array([-32768, 5]), [2]),
      createTensor('u16', new Uint16Array([65535]), [1]),
      createTensor('i32', new Int32Array([-2147483648, 7]), [2]),
      createTensor('u32', new Uint32Array([4294967295]), [1]),
      createTensor('i64', new BigInt64Array([-9223372036854775808n, 9223372036854775807n, 1n]), [3]),
      createTensor('u64', new BigUint64Array([18446744073709551615n]), [1]),
      createTensor('b', [true, false, true], [3]),
      createTensor('str', ['', 'ascii', 'ünï'], [3], 'string'),
      createTensor('i4', new Uint8Array([0x21, 0x0f]), [3], 'int4'),
      createTensor('empty', new Float32Array(0), [0, 5]),
    ];
    const graph = emptyGraph('dtypes');
    graph.initializers = tensors;
    graph.outputs = [{ name: 'f32' }];
    const back = roundTrip(new OnnxModel({ graph }));
    assert.equal(back.graph.initializers.length, tensors.length);
    for (const [i, t] of tensors.entries()) {
      const b = back.graph.initializers[i]!;
      assert.equal(b.name, t.name);
      assert.equal(b.dtype, t.dtype, t.name);
      assert.deepEqual(b.dims, t.dims, t.name);
      assert.equal(b.data.constructor, t.data.constructor, t.name);
      if (Array.isArray(t.data)) assert.deepEqual(b.data, t.data);
      else {
        const bytes = (v: OnnxTensor) =>
          Buffer.from(
            (v.data as Uint8Array).buffer,
            (v.data as Uint8Array).byteOffset,
            (v.data as Uint8Array).byteLength,
          );
        assert.ok(bytes(b).equals(bytes(t)), `${t.name} bytes differ`);
      }
    }
  });

  it('reads tensors stored in typed fields (float_data, int64_data …) as other writers emit them', () => {
    // A second, independent schema for the few fields involved: it also pins the field numbers on the wire.
    const root = protobuf.Root.fromJSON({
      nested: {
        M: {
          fields: {
            ir_version: { id: 1, type: 'int64' },
            graph: { id: 7, type: 'G' },
            opset: { id: 8, type: 'O', rule: 'repeated' },
          },
        },
        O: { fields: { domain: { id: 1, type: 'string' }, version: { id: 2, type: 'int64' } } },
        G: { fields: { name: { id: 2, type: 'string' }, initializer: { id: 5, type: 'T', rule: 'repeated' } } },
        T: {
          fields: {
            dims: { id: 1, type: 'int64', rule: 'repeated' },
            data_type: { id: 2, type: 'int32' },
            float_data: { id: 4, type: 'float', rule: 'repeated' },
            int32_data: { id: 5, type: 'int32', rule: 'repeated' },
            int64_data: { id: 7, type: 'int64', rule: 'repeated' },
            name: { id: 8, type: 'string' },
            double_data: { id: 10, type: 'double', rule: 'repeated' },
          },
        },
      },
    });
    const bytes = root
      .lookupType('M')
      .encode({
        ir_version: 8,
        opset: [{ domain: '', version: 17 }],
        graph: {
          name: 'typed',
          initializer: [
            { name: 'a', dims: [2], data_type: 1, float_data: [0.25, -8] },
            { name: 'b', dims: [2], data_type: 7, int64_data: ['-9223372036854775807', 42] },
            { name: 'c', dims: [3], data_type: 3, int32_data: [-5, 0, 100] },
            { name: 'd', dims: [1], data_type: 10, int32_data: [0x3c00] },
            { name: 'e', dims: [], data_type: 11, double_data: [1e-300] },
          ],
        },
      })
      .finish();
    const m = decodeModel(bytes);
    const [a, b, c, d, e] = m.graph.initializers;
    assert.deepEqual(Array.from(a!.data as Float32Array), [0.25, -8]);
    assert.deepEqual(Array.from(b!.data as BigInt64Array), [-9223372036854775807n, 42n]);
    assert.deepEqual(Array.from(c!.data as Int8Array), [-5, 0, 100]);
    assert.ok(c!.data instanceof Int8Array);
    assert.deepEqual(Array.from(d!.data as Uint16Array), [0x3c00]);
    assert.deepEqual(Array.from(e!.data as Float64Array), [1e-300]);
    assert.deepEqual(m.opsets, { '': 17 });
  });

  it('rejects tensors whose values do not fit their dims', () => {
    assert.throws(() => createTensor('bad', new Float32Array(5), [2, 3]), /need 6 values, got 5/);
    assert.throws(() => createTensor('bad', new Float32Array(2), [2], 'int32'), /cannot hold int32/);
    const graph = emptyGraph('g');
    graph.initializers = [{ name: 'x', dtype: 'float32', dims: [4], data: new Float32Array(3) }];
    assert.throws(() => new OnnxModel({ graph }).encode(), /need 4 values, got 3/);
  });
});
