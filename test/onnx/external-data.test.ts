import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GraphBuilder, decodeModel, loadModel, saveModel } from '@nucleus/sdk/onnx';
import { matMul, pseudoRandom, assertClose } from './reference.js';
import { f32, runModel } from './ort-session.js';

describe('saveModel with external data', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'nucleus-onnx-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  function build() {
    const g = new GraphBuilder('ext');
    const x = g.input('x', 'float32', ['batch', 64]);
    const w1 = pseudoRandom(64 * 128, 21);
    const w2 = pseudoRandom(128 * 8, 22);
    const h = g.ops.matMul(x, g.initializer('w1', w1, [64, 128]));
    const y = g.ops.matMul(
      g.ops.add(h, g.initializer('small', new Float32Array([0.5]), [1])),
      g.initializer('w2', w2, [128, 8]),
    );
    g.output(y, 'float32', ['batch', 8], { name: 'y' });
    return { model: g.toModel({ producer: 'nucleus' }), w1, w2 };
  }

  it('moves large initializers to model.onnx.data with location/offset/length, and ORT loads it from the file', async () => {
    const { model, w1, w2 } = build();
    const path = join(dir, 'm', 'model.onnx');
    const saved = await saveModel(path, model, { externalDataThresholdBytes: 1024, alignment: 4096 });

    assert.deepEqual(saved.externalTensors, ['w1', 'w2']);
    assert.equal(saved.externalDataPath, join(dir, 'm', 'model.onnx.data'));
    assert.ok(saved.modelBytes < 2000, `model file is small (${saved.modelBytes} bytes)`);
    assert.equal((await stat(saved.externalDataPath!)).size, 4096 * 8 + 128 * 8 * 4);

    const onDisk = decodeModel(await readFile(path));
    const [t1, small, t2] = onDisk.graph.initializers;
    assert.deepEqual(t1!.external, { location: 'model.onnx.data', offset: 0, length: 64 * 128 * 4 });
    assert.deepEqual(t2!.external, { location: 'model.onnx.data', offset: 4096 * 8, length: 128 * 8 * 4 });
    assert.equal(small!.external, undefined, 'the small tensor stays inline');
    assert.equal(t1!.data.length, 0);
    assert.ok(model.initializer('w1')!.data.length > 0, 'saving does not strip the in-memory model');

    const xData = pseudoRandom(2 * 64, 23);
    const out = await runModel(path, { x: f32(xData, [2, 64]) });
    const ref = matMul(
      Array.from(matMul(xData, w1, 2, 64, 128), (v) => v + 0.5),
      w2,
      2,
      128,
      8,
    );
    assertClose(out.y!.data as Float32Array, ref, 1e-3, 'y');
    const inline = await runModel(model, { x: f32(xData, [2, 64]) });
    assert.deepEqual(Array.from(out.y!.data as Float32Array), Array.from(inline.y!.data as Float32Array));

    const loaded = await loadModel(path);
    assert.equal(loaded.initializer('w1')!.external, undefined);
    assert.deepEqual(Array.from(loaded.initializer('w2')!.data as Float32Array), Array.from(w2));
  });

  it('keeps everything inline without a threshold, and refuses data paths outside the model folder', async () => {
    const { model } = build();
    const path = join(dir, 'inline', 'model.onnx');
    const saved = await saveModel(path, model);
    assert.equal(saved.externalDataPath, undefined);
    assert.ok(saved.modelBytes > 64 * 128 * 4);

    const evil = decodeModel(model.encode());
    evil.graph.initializers[0]!.external = { location: '../secret.bin', offset: 0, length: 4 };
    const evilPath = join(dir, 'evil', 'model.onnx');
    await mkdir(join(dir, 'evil'), { recursive: true });
    await writeFile(evilPath, evil.encode());
    await assert.rejects(loadModel(evilPath), /outside the model's folder/);
    await assert.rejects(saveModel(join(dir, 'x.onnx'), evil), /call loadExternalData before saving/);
  });
});
