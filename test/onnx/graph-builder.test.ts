import assert from 'node:assert/strict';
import { GraphBuilder, decodeModel } from '@nucleus/sdk/onnx';
import { OrtTensor, f32, runModel } from './ort-session.js';

describe('GraphBuilder', () => {
  it('generates unique node and value names and never reuses a declared one', () => {
    const g = new GraphBuilder('names');
    const x = g.input('x', 'float32', [2]);
    g.initializer('Relu_out', new Float32Array([1, 2]), [2]);
    const a = g.ops.relu(x);
    const b = g.ops.relu(a);
    const c = g.ops.relu(b, { name: 'Relu' });
    g.output(c, 'float32', [2]);
    const graph = g.toGraph();
    const names = graph.nodes.map((n) => n.name);
    assert.deepEqual(names, ['Relu', 'Relu_1', 'Relu_2']);
    const values = [
      ...graph.inputs.map((i) => i.name),
      ...graph.initializers.map((t) => t.name),
      ...graph.nodes.flatMap((n) => n.outputs),
    ];
    assert.equal(new Set(values).size, values.length, `duplicate value names in ${values.join(', ')}`);
    assert.notEqual(a.name, 'Relu_out', 'a generated output avoids the initializer name');
    assert.throws(() => g.input('x', 'float32', [1]), /name x is already used/);
    assert.throws(() => g.initializer('x', new Float32Array(1), [1]), /already used/);
  });

  it('shares one scalar initializer per value and dtype', () => {
    const g = new GraphBuilder('scalars');
    const x = g.input('x', 'float32', [2]);
    g.output(g.ops.mul(g.ops.add(x, 1), 1), 'float32', [2]);
    g.scalar(1, 'int64');
    const graph = g.toGraph();
    assert.equal(graph.initializers.length, 2);
    assert.deepEqual(
      graph.initializers.map((t) => [t.dtype, t.dims]),
      [
        ['float32', []],
        ['int64', []],
      ],
    );
  });

  it('renames a produced value to the requested output name, and old references follow', async () => {
    const g = new GraphBuilder('rename');
    const x = g.input('x', 'float32', [3]);
    const y = g.ops.relu(x);
    g.output(y, 'float32', [3], { name: 'activated' });
    // `y` was handed out before the rename: using it later must still mean the same value.
    g.output(g.ops.neg(y), 'float32', [3], { name: 'negated' });
    // An input cannot be renamed, so naming it as an output adds an Identity.
    g.output(x, 'float32', [3], { name: 'echo' });
    const model = g.toModel();
    const graph = decodeModel(model.encode()).graph;
    assert.deepEqual(
      graph.outputs.map((o) => o.name),
      ['activated', 'negated', 'echo'],
    );
    assert.deepEqual(
      graph.nodes.map((n) => `${n.opType}(${n.inputs.join(',')})->${n.outputs.join(',')}`),
      ['Relu(x)->activated', 'Neg(activated)->negated', 'Identity(x)->echo'],
    );
    const out = await runModel(model, { x: f32([-1, 2, -3], [3]) });
    assert.deepEqual(Array.from(out.negated!.data as Float32Array), [-0, -2, -0]);
    assert.deepEqual(Array.from(out.echo!.data as Float32Array), [-1, 2, -3]);
  });

  it('a rename reaches subgraphs that already read the value', async () => {
    const g = new GraphBuilder('outer');
    const cond = g.input('cond', 'bool', []);
    const doubled = g.ops.mul(g.input('x', 'float32', [2]), 2);
    const body = new GraphBuilder('body', { outerScope: g });
    body.output(body.ops.add(doubled, 1), 'float32', [2]);
    const other = new GraphBuilder('other', { outerScope: g });
    other.output(other.ops.neg(doubled), 'float32', [2]);
    g.output(g.node('If', [cond], { then_branch: body.toGraph(), else_branch: other.toGraph() }), 'float32', [2], {
      name: 'y',
    });
    g.output(doubled, 'float32', [2], { name: 'doubled' });
    const model = g.toModel();
    const out = await runModel(model, { cond: new OrtTensor('bool', [true], []), x: f32([1, -3], [2]) });
    assert.deepEqual(Array.from(out.y!.data as Float32Array), [3, -5]);
    assert.deepEqual(Array.from(out.doubled!.data as Float32Array), [2, -6]);
  });

  it('refuses a graph that reads an undefined value or produces no outputs', () => {
    const g = new GraphBuilder('broken');
    g.input('x', 'float32', [1]);
    assert.throws(() => g.toGraph(), /has no outputs/);
    g.output(g.node('Relu', ['nope']), 'float32', [1]);
    assert.throws(() => g.toGraph(), /reads nope, which is not defined/);
  });

  it('requires an opset import for every domain used', () => {
    const g = new GraphBuilder('domains');
    const x = g.input('x', 'float32', [1]);
    g.output(g.node('Gelu', [x], {}, { domain: 'com.microsoft' }), 'float32', [1]);
    assert.throws(() => g.toModel(), /domain\(s\) 'com.microsoft' without an opset import/);
    assert.deepEqual(g.toModel({ opsets: { 'com.microsoft': 1 } }).opsets, { '': 17, 'com.microsoft': 1 });
  });

  it('checks the declared opset against the forms its helpers emitted', () => {
    const old = new GraphBuilder('old', { opset: 12 });
    const x = old.input('x', 'float32', [1, 2]);
    old.output(old.ops.unsqueeze(x, [0]), 'float32', [1, 1, 2]);
    assert.deepEqual(
      old.toGraph().nodes[0]!.attributes.axes,
      { type: 'ints', value: [0] },
      'before opset 13 axes are an attribute',
    );
    assert.throws(
      () => old.toModel({ opsets: { '': 13 } }),
      /Unsqueeze with axes as an attribute needs opset '' in \[1, 13\)/,
    );
    assert.equal(old.toModel().irVersion, 7);

    const ln = new GraphBuilder('ln', { opset: 16 });
    const y = ln.input('y', 'float32', [2]);
    ln.output(ln.ops.layerNormalization(y, ln.initializer('s', new Float32Array(2), [2])), 'float32', [2]);
    assert.throws(() => ln.toModel(), /LayerNormalization needs opset '' >= 17, model imports 16/);
  });
});
