import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { loadModel } from '@nucleus/sdk/onnx';
import { SeededRandom } from '@nucleus/sdk';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { generateAll } from '../llm-engine/engine-helpers.js';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

const PLUGIN = join(REPO_ROOT, 'plugins', 'quant-int8');

/** Every graph the kernel rewrote into `<cacheDir>/transformed`, with its op types. */
async function transformedGraphs(cacheDir: string): Promise<{ path: string; ops: Set<string>; note: string }[]> {
  const root = join(cacheDir, 'transformed');
  const out: { path: string; ops: Set<string>; note: string }[] = [];
  for (const key of readdirSync(root)) {
    const path = join(root, key, 'model.onnx');
    const model = await loadModel(path);
    out.push({
      path,
      ops: new Set(model.graph.nodes.map((n) => n.opType)),
      note: model.metadataProps['nucleus.transform'] ?? '',
    });
  }
  return out;
}

// Each suite gets its own model cache folder (`cache.dir`), so a graph rewritten by an earlier run cannot stand in for
// this one's.
function isolatedCache(prefix: string): { dir: string; restore(): Promise<void> } {
  const dir = tempDir(prefix);
  return {
    dir,
    async restore() {
      await rm(dir, { recursive: true, force: true });
    },
  };
}

describe('models[].quantize on a tensor model', () => {
  let cache: ReturnType<typeof isolatedCache>;
  let mlpPath: string;
  let kit: TestKernel | undefined;
  before(async () => {
    cache = isolatedCache('quant-config');
    const [mlp] = await ensureBuiltinModels(join(cache.dir, 'sources'), { names: ['mlp-classifier'] });
    mlpPath = mlp!.modelPath;
    kit = await startTestKernel({
      plugins: [PLUGIN],
      builtinModels: false,
      config: {
        'cache.dir': cache.dir,
        models: [
          { name: 'mlp-int8', path: mlpPath, quantize: 'int8' },
          { name: 'mlp', path: mlpPath },
          { name: 'mlp-int3', path: mlpPath, quantize: 'int3', optional: true },
        ],
      },
    });
  });
  after(async () => {
    await kit?.stop();
    await cache?.restore();
  });

  it('serves the int8 graph: MatMulNBits in place of Gemm, same inputs and outputs, answers within 0.02 of float32', async () => {
    const info = kit!.kernel.inference.get('mlp-int8');
    assert.equal(info.state, 'ready');
    const graphs = await transformedGraphs(cache.dir);
    assert.equal(graphs.length, 1);
    assert.ok(graphs[0]!.ops.has('MatMulNBits') && !graphs[0]!.ops.has('Gemm'));
    assert.match(graphs[0]!.note, /^int8 \(quant-int8@0\.1\.0\): 2 MatMul\/Gemm nodes → MatMulNBits 8-bit/);
    assert.equal(info.path, graphs[0]!.path);
    assert.deepEqual(info.inputs, kit!.kernel.inference.get('mlp').inputs);
    const rng = new SeededRandom(21);
    const x = rng.normals(32 * 4, 1.5);
    const run = async (model: string): Promise<Float32Array> =>
      (await kit!.kernel.inference.infer({ model, inputs: { input: { dtype: 'float32', shape: [32, 4], data: x } } }))
        .outputs.probabilities!.data as Float32Array;
    const [q, f] = await Promise.all([run('mlp-int8'), run('mlp')]);
    let diff = 0;
    for (let i = 0; i < q.length; i++) diff = Math.max(diff, Math.abs(q[i]! - f[i]!));
    assert.ok(diff > 0 && diff < 0.02, `max difference ${diff}`);
  });

  it('an unknown transform fails that model with the names on offer', () => {
    const info = kit!.kernel.inference.get('mlp-int3');
    assert.equal(info.state, 'failed');
    assert.match(
      info.reason!,
      /model 'mlp-int3' asks for quantize "int3", but no active plugin provides a model transform by that name \(available: dynamic, fp16, int4, int8, int8-dq, static\)/,
    );
  });

  it('with the plugin disabled, loading it again is refused and says no transform is available', async () => {
    await kit!.kernel.plugins.disable('quant-int8');
    try {
      await assert.rejects(
        kit!.kernel.inference.load('mlp-int8'),
        /asks for quantize "int8", but no active plugin provides a model transform by that name \(available: none\)/,
      );
      // The plain model is untouched by it.
      await kit!.kernel.inference.load('mlp');
    } finally {
      await kit!.kernel.plugins.enable('quant-int8');
    }
    await kit!.kernel.inference.load('mlp-int8');
    assert.equal(kit!.kernel.inference.get('mlp-int8').state, 'ready');
  });
});

describe('a run-time load (POST /admin/models) with quantize as an object', () => {
  const ADMIN_KEY = 'admin-key-0123456789';
  let cache: ReturnType<typeof isolatedCache>;
  let kit: TestKernel | undefined;
  before(async () => {
    cache = isolatedCache('quant-admin');
    kit = await startTestKernel({
      plugins: [PLUGIN, join(REPO_ROOT, 'plugins', 'model-lifecycle')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      builtinModels: false,
      config: { 'cache.dir': cache.dir },
    });
  });
  after(async () => {
    await kit?.stop();
    await cache?.restore();
  });

  it('loads with the method and its settings, and refuses settings the method does not take', async () => {
    const [mlp] = await ensureBuiltinModels(join(cache.dir, 'sources'), { names: ['mlp-classifier'] });
    const load = (quantize: unknown, name: string) =>
      kit!.request('/admin/models', {
        method: 'POST',
        headers: { authorization: `Bearer ${ADMIN_KEY}` },
        body: { name, source: mlp!.modelPath, quantize },
      });
    const ok = await load({ method: 'int4', blockSize: 16 }, 'mlp-int4');
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    assert.equal(kit!.kernel.inference.get('mlp-int4').state, 'ready');
    const noMethod = await load({ blockSize: 16 }, 'mlp-none');
    assert.equal(noMethod.status, 400, JSON.stringify(noMethod.body));
    const unknown = await load({ method: 'int4', colour: 'blue' }, 'mlp-colour');
    assert.ok([400, 422].includes(unknown.status), JSON.stringify(unknown.body));
    assert.match(JSON.stringify(unknown.body), /colour/);
  });
});

describe('models[].quantize without the quant-int8 plugin', () => {
  let cache: ReturnType<typeof isolatedCache>;
  before(() => {
    cache = isolatedCache('quant-missing');
  });
  after(async () => {
    await cache?.restore();
  });

  it('refuses to start: the model cannot load and the message says why', async () => {
    const [mlp] = await ensureBuiltinModels(join(cache.dir, 'sources'), { names: ['mlp-classifier'] });
    await assert.rejects(
      startTestKernel({
        builtinModels: false,
        config: { 'cache.dir': cache.dir, models: [{ name: 'mlp', path: mlp!.modelPath, quantize: 'int8' }] },
      }),
      /model 'mlp' failed to load: model 'mlp' asks for quantize "int8", but no active plugin provides a model transform by that name \(available: none\)/,
    );
  });
});

describe('models[].quantize: int8 on stories260K-q8_0.gguf through the generation engine', () => {
  let cache: ReturnType<typeof isolatedCache> | undefined;
  let kit: TestKernel | undefined;
  before(async function () {
    requireStories(this);
    cache = isolatedCache('quant-stories');
    const path = join(STORIES_DIR, 'stories260K-q8_0.gguf');
    kit = await startTestKernel({
      plugins: [PLUGIN],
      config: {
        'cache.dir': cache.dir,
        models: [{ name: 'stories-int8', path, quantize: 'int8', graphStyle: 'contrib' }],
      },
    });
  });
  after(async () => {
    await kit?.stop();
    await cache?.restore();
  });

  it('runs the 8-bit graph and reports how many of the 200 greedy ids agree with reference-q8_0-greedy-200', async () => {
    const graphs = await transformedGraphs(cache!.dir);
    assert.equal(graphs.length, 1);
    assert.ok(
      graphs[0]!.ops.has('MatMulNBits') && graphs[0]!.ops.has('GroupQueryAttention') && !graphs[0]!.ops.has('MatMul'),
    );
    // The GGUF loader keeps the file's Q8_0 blocks itself; the transform quantizes what the file stores as F32.
    assert.match(graphs[0]!.note, /5 MatMul\/Gemm nodes → MatMulNBits 8-bit over 5 weights/);
    const expected = parseIds(readFileSync(join(STORIES_DIR, 'reference-q8_0-greedy-200.ids.txt'), 'utf8'));
    const out = await generateAll(kit!.kernel.generation, {
      model: 'stories-int8',
      prompt: expected.prompt,
      maxTokens: 200,
      temperature: 0,
      ignoreEos: true,
    });
    const ids = out.tokens[0]!;
    assert.equal(ids.length, 200);
    let prefix = 0;
    while (prefix < 200 && ids[prefix] === expected.next[prefix]) prefix++;
    console.log(`      contrib graph, int8 compute: first ${prefix} of 200 ids agree with the Q8_0 reference`);
    // Where the F32 and Q8_0 references part (after id 114) the logits are close: int8 activations may tip it.
    assert.ok(prefix >= 114, `only the first ${prefix} ids agree`);
  });
});

describe('models[].quantize: int4 and fp16 on stories260K.gguf through the generation engine', () => {
  let cache: ReturnType<typeof isolatedCache> | undefined;
  let kit: TestKernel | undefined;
  before(async function () {
    requireStories(this);
    cache = isolatedCache('quant-stories-int4');
    const path = join(STORIES_DIR, 'stories260K.gguf');
    kit = await startTestKernel({
      plugins: [PLUGIN],
      config: {
        'cache.dir': cache.dir,
        models: [
          { name: 'stories-int4', path, quantize: 'int4', graphStyle: 'contrib' },
          { name: 'stories-int4-zp', path, quantize: { method: 'int4', blockSize: 128, symmetric: false } },
          { name: 'stories-fp16', path, quantize: 'fp16', graphStyle: 'contrib' },
          { name: 'stories-bad', path, quantize: { method: 'int4', blockSize: 48 }, optional: true },
        ],
      },
    });
  });
  after(async () => {
    await kit?.stop();
    await cache?.restore();
  });

  it('int4 (symmetric, block 32; and block 128 with zero points) and fp16 graphs load and generate 64 greedy tokens', async () => {
    const graphs = await transformedGraphs(cache!.dir);
    assert.equal(graphs.length, 3);
    const int4 = graphs.filter((g) => g.note.startsWith('int4'));
    assert.equal(int4.length, 2);
    for (const g of int4) {
      assert.ok(g.ops.has('MatMulNBits') && g.ops.has('GatherBlockQuantized'), g.note);
      assert.match(g.note, /MatMulNBits and 1 Gather → GatherBlockQuantized, 4-bit/);
    }
    const fp16 = graphs.find((g) => g.note.startsWith('fp16'))!;
    assert.match(fp16.note, /weights stored float16/);
    const expected = parseIds(readFileSync(join(STORIES_DIR, 'reference-greedy-200.ids.txt'), 'utf8'));
    for (const model of ['stories-int4', 'stories-int4-zp', 'stories-fp16']) {
      const out = await generateAll(kit!.kernel.generation, {
        model,
        prompt: expected.prompt,
        maxTokens: 64,
        temperature: 0,
        ignoreEos: true,
      });
      const ids = out.tokens[0]!;
      assert.equal(ids.length, 64);
      let prefix = 0;
      while (prefix < 64 && ids[prefix] === expected.next[prefix]) prefix++;
      console.log(`      ${model}: first ${prefix} of 64 greedy ids agree with the float32 reference`);
      // fp16 weights are float32 to within 2^-11: the reference's greedy path holds; 4-bit weights part from it early.
      if (model === 'stories-fp16') assert.equal(prefix, 64);
      assert.ok(ids.every((id) => id >= 0 && id < 512));
    }
  });

  it('a setting the method does not take fails that model with the reason', () => {
    const info = kit!.kernel.generation.list().find((m) => m.name === 'stories-bad');
    assert.equal(info?.state, 'failed');
    assert.match(info?.reason ?? '', /quantize int4: blockSize must be equal to one of the allowed values/);
  });
});
