import { strict as assert } from 'node:assert';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NucleusEvents, RegisteredModel } from '@nucleus/sdk';
import type { TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { admin, errorOf, startLifecycleKernel, streamCompletion } from './lifecycle-fixtures.js';

const PROMPT = 'the abc';

describe('the model-lifecycle plugin: /admin/models over the model registry', () => {
  let kit: TestKernel;
  let dir: string;
  let gguf: string;
  const swapFailed: NucleusEvents['model.swapFailed'][] = [];

  before(async () => {
    dir = tempDir('admin-models');
    gguf = join(dir, 'tiny.gguf');
    writeTestLlamaGguf(gguf);
    writeFileSync(join(dir, 'broken.gguf'), 'GGUF but not really a GGUF file');
    kit = await startLifecycleKernel();
    kit.kernel.events.on('model.swapFailed', (e) => swapFailed.push(e));
  });
  after(async () => {
    await kit?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const models = async (): Promise<RegisteredModel[]> =>
    ((await admin(kit, '/admin/models')).body as { models: RegisteredModel[] }).models;

  it('lists every model, tensor and LLM, with versions, state, backend and replicas, for admins only', async () => {
    assert.equal((await kit.request('/admin/models')).status, 401);
    const res = await admin(kit, '/admin/models');
    assert.equal(res.status, 200);
    const byName = new Map((res.body as { models: RegisteredModel[] }).models.map((m) => [m.name, m]));
    const mlp = byName.get('mlp-classifier')!;
    assert.deepEqual(
      [mlp.kind, mlp.origin, mlp.state, mlp.defaultVersion, mlp.backend, mlp.replicas],
      ['tensor', 'builtin', 'ready', '1', 'cpu', 1],
    );
    assert.match(mlp.versions[0]!.source!, /model\.onnx$/);
    const llm = byName.get('tiny-llama')!;
    assert.deepEqual([llm.kind, llm.origin, llm.versions.length], ['llm', 'builtin', 1]);
    assert.ok(['idle', 'ready'].includes(llm.state));
    assert.equal(byName.get('bert-tiny')!.kind, 'embedding');
  });

  it('loads an LLM from a file, refuses the name twice (409), and refuses bad bodies and sources with 400 (422 for a file that cannot load) saying why', async () => {
    const loaded = await admin(kit, '/admin/models', { body: { name: 'tl', source: gguf, workers: 1 } });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    const model = (loaded.body as { model: RegisteredModel }).model;
    assert.deepEqual(
      [model.name, model.kind, model.origin, model.state, model.replicas, model.versions[0]!.source],
      ['tl', 'llm', 'runtime', 'ready', 1, gguf],
    );
    assert.ok((await streamCompletion(kit, { model: 'tl', prompt: PROMPT, max_tokens: 8 })).complete);

    const twice = await admin(kit, '/admin/models', { body: { name: 'tl', source: gguf } });
    assert.deepEqual([twice.status, errorOf(twice).code], [409, 'model_exists']);
    const tensorName = await admin(kit, '/admin/models', { body: { name: 'mlp-classifier', source: gguf } });
    assert.equal(tensorName.status, 409);

    const noSource = await admin(kit, '/admin/models', { body: { name: 'x' } });
    assert.deepEqual([noSource.status, errorOf(noSource).code], [400, 'invalid_body']);
    assert.match(errorOf(noSource).message, /source/);
    const extra = await admin(kit, '/admin/models', { body: { name: 'x', source: gguf, colour: 'red' } });
    assert.match(errorOf(extra).message, /colour/);
    const badName = await admin(kit, '/admin/models', { body: { name: '../x', source: gguf } });
    assert.deepEqual([badName.status, errorOf(badName).param], [400, 'name']);
    const missing = await admin(kit, '/admin/models', { body: { name: 'x', source: join(dir, 'nowhere.gguf') } });
    assert.deepEqual([missing.status, errorOf(missing).code], [400, 'model_source_not_found']);
    assert.match(errorOf(missing).message, /nowhere\.gguf does not exist/);
    const broken = await admin(kit, '/admin/models', { body: { name: 'x', source: join(dir, 'broken.gguf') } });
    assert.deepEqual([broken.status, errorOf(broken).code], [422, 'model_load_failed']);
    assert.match(errorOf(broken).message, /broken\.gguf/);
    assert.ok(!(await models()).some((m) => m.name === 'x'), 'a failed load leaves nothing behind');
  });

  it('keeps the old version serving when a swap cannot load the new source (422), and says it rolled back', async () => {
    const before = await streamCompletion(kit, { model: 'tl', prompt: PROMPT, max_tokens: 8 });
    const broken = await admin(kit, '/admin/models/tl/swap', { body: { source: join(dir, 'broken.gguf') } });
    assert.deepEqual([broken.status, errorOf(broken).code], [422, 'model_load_failed']);
    assert.match(errorOf(broken).message, /broken\.gguf.*version 1 keeps serving/);
    const missing = await admin(kit, '/admin/models/tl/swap', { body: { source: join(dir, 'nowhere.gguf') } });
    assert.deepEqual([missing.status, errorOf(missing).code], [400, 'model_source_not_found']);
    const tensor = await admin(kit, '/admin/models/tl/swap', {
      body: { source: (await models()).find((m) => m.name === 'mlp-classifier')!.versions[0]!.source },
    });
    assert.deepEqual([tensor.status, errorOf(tensor).code], [400, 'invalid_source']);

    const after = await streamCompletion(kit, { model: 'tl', prompt: PROMPT, max_tokens: 8 });
    assert.ok(after.complete);
    assert.equal(after.text, before.text);
    const tl = (await models()).find((m) => m.name === 'tl')!;
    assert.deepEqual([tl.state, tl.defaultVersion], ['ready', '1']);
    assert.deepEqual(
      swapFailed.map((e) => [e.model, e.rolledBack]),
      [
        ['tl', true],
        ['tl', true],
        ['tl', true],
      ],
    );

    const unknown = await admin(kit, '/admin/models/ghost/swap', { body: { source: gguf } });
    assert.deepEqual([unknown.status, errorOf(unknown).code], [404, 'model_not_found']);
    const noBody = await admin(kit, '/admin/models/tl/swap', { body: {} });
    assert.deepEqual([noBody.status, errorOf(noBody).code], [400, 'invalid_body']);
  });

  it('unloads an LLM: new requests get 404 at once, and it leaves the list', async () => {
    const res = await admin(kit, '/admin/models/tl', { method: 'DELETE' });
    assert.deepEqual([res.status, res.body], [200, { unloaded: 'tl' }]);
    const after = await streamCompletion(kit, { model: 'tl', prompt: PROMPT, max_tokens: 8 });
    assert.deepEqual([after.status, after.error?.code], [404, 'model_not_found']);
    assert.ok(!(await models()).some((m) => m.name === 'tl'));
    const again = await admin(kit, '/admin/models/tl', { method: 'DELETE' });
    assert.deepEqual([again.status, errorOf(again).code], [404, 'model_not_found']);
    const badQuery = await admin(kit, '/admin/models/mlp-classifier?drainTimeoutMs=soon', { method: 'DELETE' });
    assert.deepEqual([badQuery.status, errorOf(badQuery).code], [400, 'invalid_query']);
  });

  it('loads, swaps and unloads a tensor model from a source beside the built-in ones', async () => {
    const sources = new Map((await models()).map((m) => [m.name, m.versions[0]!.source!]));
    const loaded = await admin(kit, '/admin/models', { body: { name: 'clf', source: sources.get('mlp-classifier') } });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    assert.deepEqual((await admin(kit, '/v2/models/clf')).body, {
      ...((await admin(kit, '/v2/models/mlp-classifier')).body as object),
      name: 'clf',
    });
    const infer = await admin(kit, '/v2/models/clf/infer', {
      body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] },
    });
    assert.equal(infer.status, 200, JSON.stringify(infer.body));

    const swapped = await admin(kit, '/admin/models/clf/swap', { body: { source: sources.get('tabular-classifier') } });
    assert.equal(swapped.status, 200, JSON.stringify(swapped.body));
    const model = (swapped.body as { model: RegisteredModel }).model;
    assert.deepEqual([model.defaultVersion, model.versions.map((v) => `${v.version}:${v.state}`)], ['2', ['2:ready']]);
    const meta = (await admin(kit, '/v2/models/clf')).body as {
      versions: string[];
      inputs: { name: string; shape: number[] }[];
    };
    assert.deepEqual([meta.versions, meta.inputs.map((i) => [i.name, i.shape])], [['2'], [['features', [-1, 8]]]]);

    const broken = await admin(kit, '/admin/models/clf/swap', { body: { source: join(dir, 'broken.gguf') } });
    assert.equal(broken.status, 400);
    assert.equal(
      ((await admin(kit, '/v2/models/clf')).body as { versions: string[] }).versions[0],
      '2',
      'the failed swap left version 2 serving',
    );

    assert.equal((await admin(kit, '/admin/models/clf', { method: 'DELETE' })).status, 200);
    const gone = await admin(kit, '/v2/models/clf');
    assert.deepEqual([gone.status, errorOf(gone).code], [404, 'model_not_found']);
  });

  it('maps the KServe repository extension onto the same registry: an LLM unloads and loads again through it', async () => {
    assert.equal((await admin(kit, '/admin/models', { body: { name: 'kl', source: gguf } })).status, 201);
    const unload = await admin(kit, '/v2/repository/models/kl/unload', { method: 'POST' });
    assert.deepEqual([unload.status, unload.body], [200, {}]);
    assert.equal((await streamCompletion(kit, { model: 'kl', prompt: PROMPT, max_tokens: 4 })).status, 404);
    assert.ok(!(await models()).some((m) => m.name === 'kl'));

    const load = await admin(kit, '/v2/repository/models/kl/load', { method: 'POST' });
    assert.deepEqual([load.status, load.body], [200, {}]);
    const kl = (await models()).find((m) => m.name === 'kl')!;
    assert.deepEqual([kl.state, kl.versions[0]!.source], ['ready', gguf]);
    assert.ok((await streamCompletion(kit, { model: 'kl', prompt: PROMPT, max_tokens: 4 })).complete);
    assert.equal((await admin(kit, '/admin/models/kl', { method: 'DELETE' })).status, 200);
  });
});
