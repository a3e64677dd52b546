import assert from 'node:assert/strict';
import * as ort from 'onnxruntime-node';
import { decodeModel, type OnnxModel, type OnnxNode } from '@nucleus/sdk/onnx';
import { assertClose, conv2d, matMul, pseudoRandom, softmaxRows } from '../onnx/reference.js';
import { builtin } from './builtin-models-module.js';

ort.env.logLevel = 'fatal';

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

type Feeds = Record<string, ort.Tensor>;

async function run(bytes: Uint8Array, feeds: Feeds): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(bytes, sessionOptions);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

function weights(model: OnnxModel, name: string): Float32Array {
  const t = model.initializer(name);
  assert.ok(t, `initializer ${name}`);
  return t.data as Float32Array;
}

function i64(values: number[], dims: number[]): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(values, (v) => BigInt(v)),
    dims,
  );
}

describe('built-in models', () => {
  const SYMBOLS: Record<string, number> = { batch: 3, sequence: 7 };

  for (const generator of builtin.BUILTIN_MODELS) {
    it(`${generator.name}: loads in ORT and returns the names, dtypes and shapes its metadata declares`, async () => {
      const { bytes, metadata } = generator.build();
      assert.equal(metadata.name, generator.name);
      const model = decodeModel(bytes);
      assert.deepEqual(
        model.graph.inputs.map((i) => [i.name, i.type]),
        metadata.inputs.map((i) => [i.name, { kind: 'tensor', dtype: i.dtype, shape: i.shape }]),
        'graph inputs match metadata',
      );
      assert.deepEqual(
        model.graph.outputs.map((o) => [o.name, o.type]),
        metadata.outputs.map((o) => [o.name, { kind: 'tensor', dtype: o.dtype, shape: o.shape }]),
        'graph outputs match metadata',
      );

      const feeds: Feeds = {};
      for (const input of metadata.inputs) {
        const dims = input.shape.map((d) => (typeof d === 'string' ? SYMBOLS[d]! : d!));
        const n = dims.reduce((a, b) => a * b, 1);
        if (input.dtype === 'float32') feeds[input.name] = new ort.Tensor('float32', pseudoRandom(n, 31), dims);
        else if (input.name === 'attention_mask') feeds[input.name] = i64(new Array(n).fill(1), dims);
        else
          feeds[input.name] = i64(
            Array.from({ length: n }, (_, k) => (k * 7) % 5),
            dims,
          );
      }
      const out = await run(bytes, feeds);
      assert.deepEqual(Object.keys(out).sort(), metadata.outputs.map((o) => o.name).sort());
      for (const spec of metadata.outputs) {
        const t = out[spec.name]!;
        assert.equal(t.type, spec.dtype, `${spec.name} dtype`);
        assert.deepEqual(
          t.dims,
          spec.shape.map((d) => (typeof d === 'string' ? SYMBOLS[d]! : d)),
          `${spec.name} shape`,
        );
        if (t.type === 'float32') assert.ok((t.data as Float32Array).every(Number.isFinite), `${spec.name} is finite`);
      }
    });
  }

  it('are deterministic: the same bytes on every build', () => {
    for (const generator of builtin.BUILTIN_MODELS) {
      assert.ok(Buffer.from(generator.build().bytes).equals(Buffer.from(generator.build().bytes)), generator.name);
    }
  });

  it('mlp-classifier: probabilities and label match a reference from its own weights', async () => {
    const { bytes } = builtin.buildMlpClassifier();
    const model = decodeModel(bytes);
    const x = pseudoRandom(5 * 4, 41).map((v) => v * 3);
    const out = await run(bytes, { input: new ort.Tensor('float32', x, [5, 4]) });
    const h = matMul(x, weights(model, 'fc1.weight'), 5, 4, 16).map((v, i) =>
      Math.max(0, v + weights(model, 'fc1.bias')[i % 16]!),
    );
    const logits = matMul(h, weights(model, 'fc2.weight'), 5, 16, 3).map(
      (v, i) => v + weights(model, 'fc2.bias')[i % 3]!,
    );
    const probs = softmaxRows(logits, 5, 3);
    assertClose(out.probabilities!.data as Float32Array, probs, 1e-5, 'probabilities');
    const labels = [0, 1, 2, 3, 4].map((r) => {
      const row = Array.from(probs.slice(r * 3, r * 3 + 3));
      return BigInt(row.indexOf(Math.max(...row)));
    });
    assert.deepEqual(Array.from(out.label!.data as BigInt64Array), labels);
    assert.ok(new Set(labels).size > 1, 'the sample rows do not all land in one class');
  });

  it('multi-io: both outputs match a reference', async () => {
    const { bytes } = builtin.buildMultiIoModel();
    const model = decodeModel(bytes);
    const features = pseudoRandom(4 * 6, 42);
    const category = [4, 0, 2, 2];
    const out = await run(bytes, {
      features: new ort.Tensor('float32', features, [4, 6]),
      category: i64(category, [4]),
    });
    const table = weights(model, 'category_embedding');
    const mixed = Array.from(features, (v, i) => v + table[category[Math.floor(i / 6)]! * 6 + (i % 6)]!);
    const emb = matMul(mixed, weights(model, 'proj.weight'), 4, 6, 4).map((v, i) =>
      Math.tanh(v + weights(model, 'proj.bias')[i % 4]!),
    );
    assertClose(out.embedding!.data as Float32Array, emb, 1e-5, 'embedding');
    const buckets = [0, 1, 2, 3].map((r) => {
      const row = Array.from(emb.slice(r * 4, r * 4 + 4));
      return BigInt(row.indexOf(Math.max(...row)));
    });
    assert.deepEqual(Array.from(out.bucket!.data as BigInt64Array), buckets);
  });

  it('tabular-classifier: the forest matches a tree walk over its own attributes, and carries its preprocessing', async () => {
    const { bytes, metadata } = builtin.buildTabularClassifier();
    assert.equal(metadata.preprocessing?.type, 'standardize');
    assert.deepEqual(
      metadata.preprocessing?.features.map((f) => f.name),
      builtin.TABULAR_FEATURES.map((f) => f.name),
    );
    assert.equal(metadata.preprocessing?.features.length, 8);
    assert.ok(metadata.preprocessing?.features.every((f) => Number.isFinite(f.mean) && f.std > 0));

    const node = decodeModel(bytes).graph.nodes[0]!;
    assert.equal(node.domain, 'ai.onnx.ml');
    const ints = (n: OnnxNode, k: string) => (n.attributes[k]!.value as number[]).map(Number);
    const floats = (n: OnnxNode, k: string) => n.attributes[k]!.value as number[];
    const [treeIds, nodeIds, featureIds, trueIds, falseIds] = [
      'nodes_treeids',
      'nodes_nodeids',
      'nodes_featureids',
      'nodes_truenodeids',
      'nodes_falsenodeids',
    ].map((k) => ints(node, k));
    const values = floats(node, 'nodes_values');
    const modes = node.attributes.nodes_modes!.value as string[];
    const find = (tree: number, id: number) => treeIds!.findIndex((t, i) => t === tree && nodeIds![i] === id);

    const rows = 16;
    const x = pseudoRandom(rows * 8, 43).map((v) => v * 2);
    const out = await run(bytes, { features: new ort.Tensor('float32', x, [rows, 8]) });
    const scores = new Float64Array(rows * 3);
    for (let r = 0; r < rows; r++) {
      for (const tree of new Set(treeIds)) {
        let i = find(tree, 0);
        while (modes[i] !== 'LEAF')
          i = find(tree, x[r * 8 + featureIds![i]!]! <= values[i]! ? trueIds![i]! : falseIds![i]!);
        const leaf = nodeIds![i]!;
        const cTree = ints(node, 'class_treeids');
        const cNode = ints(node, 'class_nodeids');
        const cIds = ints(node, 'class_ids');
        const cW = floats(node, 'class_weights');
        for (let k = 0; k < cTree.length; k++)
          if (cTree[k] === tree && cNode[k] === leaf) scores[r * 3 + cIds[k]!]! += cW[k]!;
      }
    }
    const probs = softmaxRows(scores, rows, 3);
    assertClose(out.probabilities!.data as Float32Array, probs, 1e-5, 'probabilities');
    const labels = Array.from({ length: rows }, (_, r) => {
      const row = Array.from(probs.slice(r * 3, r * 3 + 3));
      return BigInt(row.indexOf(Math.max(...row)));
    });
    assert.deepEqual(Array.from(out.label!.data as BigInt64Array), labels);
    assert.equal(new Set(labels).size, 3, 'the sample rows reach all three classes');
  });

  it('resnet-tiny: logits match a plain-TypeScript forward pass', async () => {
    const { bytes } = builtin.buildResnetTiny();
    const model = decodeModel(bytes);
    const x = pseudoRandom(3 * 224 * 224, 44);
    const out = await run(bytes, { input: new ort.Tensor('float32', x, [1, 3, 224, 224]) });

    type T = { data: Float64Array | Float32Array; dims: number[] };
    const conv = (t: T, name: string, stride: number): T => {
      const w = model.initializer(`${name}.weight`)!;
      return conv2d(t.data, t.dims, w.data as Float32Array, w.dims, weights(model, `${name}.bias`), {
        stride,
        pad: (w.dims[2]! - 1) / 2,
      });
    };
    const relu = (t: T): T => ({ data: t.data.map((v) => Math.max(0, v)) as Float64Array, dims: t.dims });
    const add = (a: T, b: T): T => ({ data: a.data.map((v, i) => v + b.data[i]!) as Float64Array, dims: a.dims });
    const maxPool2 = (t: T): T => {
      const [n, c, h, w] = t.dims as [number, number, number, number];
      const oh = h / 2;
      const ow = w / 2;
      const o = new Float64Array(n * c * oh * ow);
      for (let p = 0; p < n * c; p++)
        for (let y = 0; y < oh; y++)
          for (let xx = 0; xx < ow; xx++) {
            const at = (dy: number, dx: number) => t.data[(p * h + 2 * y + dy) * w + 2 * xx + dx]!;
            o[(p * oh + y) * ow + xx] = Math.max(at(0, 0), at(0, 1), at(1, 0), at(1, 1));
          }
      return { data: o, dims: [n, c, oh, ow] };
    };

    const stem = maxPool2(relu(conv({ data: x, dims: [1, 3, 224, 224] }, 'stem', 2)));
    const b1 = relu(add(conv(relu(conv(stem, 'block1.conv1', 1)), 'block1.conv2', 1), stem));
    const b2 = relu(add(conv(relu(conv(b1, 'block2.conv1', 2)), 'block2.conv2', 1), conv(b1, 'block2.shortcut', 2)));
    assert.deepEqual(b2.dims, [1, 16, 28, 28]);
    const pooled = Array.from(
      { length: 16 },
      (_, ch) => Array.from(b2.data.subarray(ch * 784, ch * 784 + 784)).reduce((a, b) => a + b, 0) / 784,
    );
    const fcW = weights(model, 'fc.weight');
    const fcB = weights(model, 'fc.bias');
    const logits = Array.from(
      { length: 10 },
      (_, k) => fcB[k]! + pooled.reduce((s, v, ch) => s + v * fcW[k * 16 + ch]!, 0),
    );
    assertClose(out.logits!.data as Float32Array, logits, 1e-5, 'logits');
  });

  it('bert-tiny: a padded row equals the same row unpadded at its real positions', async () => {
    const { bytes, metadata } = builtin.buildBertTiny();
    const hidden = builtin.BERT_TINY_CONFIG.hidden;
    assert.equal(metadata.outputs[0]!.shape[2], hidden);
    const long = [101, 7, 512, 33, 900, 45, 102];
    const short = [101, 88, 19, 102];
    const padded = [...short, 0, 0, 0];
    const batch = await run(bytes, {
      input_ids: i64([...long, ...padded], [2, 7]),
      attention_mask: i64([...long.map(() => 1), 1, 1, 1, 1, 0, 0, 0], [2, 7]),
    });
    const alone = await run(bytes, { input_ids: i64(short, [1, 4]), attention_mask: i64([1, 1, 1, 1], [1, 4]) });
    const batched = batch.last_hidden_state!.data as Float32Array;
    const single = alone.last_hidden_state!.data as Float32Array;
    assert.deepEqual(batch.last_hidden_state!.dims, [2, 7, hidden]);
    assertClose(batched.subarray(7 * hidden, 7 * hidden + 4 * hidden), single, 1e-5, 'padded row at real positions');

    // The mask is what makes that true: attending to the padding changes the real positions.
    const unmasked = await run(bytes, {
      input_ids: i64(padded, [1, 7]),
      attention_mask: i64(new Array(7).fill(1), [1, 7]),
    });
    const drift = Math.max(
      ...Array.from(single, (v, i) => Math.abs(v - (unmasked.last_hidden_state!.data as Float32Array)[i]!)),
    );
    assert.ok(drift > 1e-2, `ignoring the mask should change the output (max change ${drift})`);

    // The last op is a LayerNorm with unit scale and zero bias: each token vector has mean 0 and variance 1.
    for (let p = 0; p < 4; p++) {
      const v = Array.from(single.subarray(p * hidden, (p + 1) * hidden));
      const mean = v.reduce((a, b) => a + b, 0) / hidden;
      const variance = v.reduce((a, b) => a + (b - mean) ** 2, 0) / hidden;
      assert.ok(
        Math.abs(mean) < 1e-5 && Math.abs(variance - 1) < 1e-4,
        `token ${p}: mean ${mean}, variance ${variance}`,
      );
    }
    // Different tokens give different vectors.
    assert.ok(Math.abs(single[0]! - single[hidden]!) > 1e-3);
  });
});
