import { strict as assert } from 'node:assert';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelRepository } from '@nucleus/core/internal/engine/model-repository';
import { recordingLogger, startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { scaleModel, sha256, writeVersion } from '../engine/engine-fixtures.js';
import { tempDir } from '../helpers/paths.js';
import { pluginDir } from '../observability/helpers.js';

const ADMIN = 'admin-key-sources-0123456789';
const admin = { authorization: `Bearer ${ADMIN}` };
const errorOf = (body: unknown) => (body as { error: { code: string; message: string } }).error;

// Sources of models loaded at run time: sha256 pins for files of any format and for folders (a pin per file),
// `allowedModelRoots` with symlinks resolved, and a model repository whose symlinks are not followed out of it.
describe('model sources: pins, allowed roots and symlinks over HTTP', function () {
  this.timeout(120_000);
  let base: string;
  let allowed: string;
  let elsewhere: string;
  let repo: string;
  let kit: TestKernel;
  const model = scaleModel(2);
  const digest = sha256(model);

  before(async () => {
    base = tempDir('model-source-guards');
    allowed = join(base, 'allowed');
    elsewhere = join(base, 'elsewhere');
    repo = join(allowed, 'repo');
    mkdirSync(elsewhere, { recursive: true });
    writeFileSync(join(elsewhere, 'model.onnx'), model);
    writeVersion(allowed, 'scale', '1', model);
    writeVersion(repo, 'good', '1', model);
    // A repository model whose model.onnx is a link to a file outside the repository.
    mkdirSync(join(repo, 'escape', '1'), { recursive: true });
    symlinkSync(join(elsewhere, 'model.onnx'), join(repo, 'escape', '1', 'model.onnx'));
    // Inside the allowed root: a link to the outside file, and a folder whose model.onnx links there.
    symlinkSync(join(elsewhere, 'model.onnx'), join(allowed, 'linked.onnx'));
    mkdirSync(join(allowed, 'sneaky', '1'), { recursive: true });
    symlinkSync(join(elsewhere, 'model.onnx'), join(allowed, 'sneaky', '1', 'model.onnx'));
    writeFileSync(join(allowed, 'model.gguf'), 'not really a gguf, but its bytes are pinned');
    kit = await startTestKernel({
      plugins: [pluginDir('model-lifecycle'), pluginDir('api-kserve')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      builtinModels: false,
      config: { allowedModelRoots: [allowed], modelRepository: repo },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(base, { recursive: true, force: true });
  });

  const load = (body: Record<string, unknown>) => kit.request('/admin/models', { headers: admin, body });

  it('loads a model from under an allowed root, and refuses one elsewhere with 403 naming only the source', async () => {
    const ok = await load({ name: 'inside', source: join(allowed, 'scale', '1', 'model.onnx') });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const source = join(elsewhere, 'model.onnx');
    const refused = await load({ name: 'outside', source });
    assert.equal(refused.status, 403);
    assert.equal(errorOf(refused.body).code, 'model_source_not_allowed');
    assert.ok(errorOf(refused.body).message.includes(source));
    assert.ok(!errorOf(refused.body).message.includes(allowed), 'the message shows the allowed roots');
    // A missing file outside the roots is refused the same way: the answer does not tell whether it exists.
    const missing = await load({ name: 'outside2', source: join(elsewhere, 'nothing.onnx') });
    assert.deepEqual([missing.status, errorOf(missing.body).code], [403, 'model_source_not_allowed']);
    const swap = await kit.request('/admin/models/inside/swap', { headers: admin, body: { source } });
    assert.deepEqual([swap.status, errorOf(swap.body).code], [403, 'model_source_not_allowed']);
  });

  it('resolves symlinks before the check: a link to the outside, or a folder holding one, is refused', async () => {
    const link = await load({ name: 'linked', source: join(allowed, 'linked.onnx') });
    assert.deepEqual([link.status, errorOf(link.body).code], [403, 'model_source_not_allowed']);
    const folder = await load({ name: 'sneaky', source: join(allowed, 'sneaky') });
    assert.deepEqual([folder.status, errorOf(folder.body).code], [403, 'model_source_not_allowed']);
    assert.match(errorOf(folder.body).message, /holds 1\/model\.onnx, a symlink that leads outside/);
    assert.ok(!errorOf(folder.body).message.includes(elsewhere), 'the message shows where the link leads');
  });

  it('checks a pin per file for a folder, and a single digest for a file of any format', async () => {
    const folder = join(allowed, 'scale');
    const ok = await load({ name: 'pinned', source: folder, sha256: { '1/model.onnx': digest.toUpperCase() } });
    assert.equal(ok.status, 201, JSON.stringify(ok.body));
    const wrong = await load({ name: 'pinned2', source: folder, sha256: { '1/model.onnx': '0'.repeat(64) } });
    assert.deepEqual([wrong.status, errorOf(wrong.body).code], [400, 'model_sha256_mismatch']);
    assert.match(
      errorOf(wrong.body).message,
      /1\/model\.onnx in model source .* has sha256 [0-9a-f]{64}, not the pinned 0{64}/,
    );
    const absent = await load({ name: 'pinned3', source: folder, sha256: { '2/model.onnx': digest } });
    assert.match(errorOf(absent.body).message, /has no file 2\/model\.onnx, which its sha256 pins/);
    const escaped = await load({ name: 'pinned4', source: folder, sha256: { '../elsewhere/model.onnx': digest } });
    assert.match(errorOf(escaped.body).message, /not a path inside the folder/);
    const single = await load({ name: 'pinned5', source: folder, sha256: digest });
    assert.match(errorOf(single.body).message, /is a folder; pin its files by name/);
    const badShape = await load({ name: 'pinned6', source: folder, sha256: { '1/model.onnx': 'xyz' } });
    assert.equal(badShape.status, 400);
    // A GGUF (or llama2.c) file is pinned as any file: checked before a format reads a byte of it.
    const gguf = join(allowed, 'model.gguf');
    const ggufWrong = await load({ name: 'gguf', source: gguf, sha256: 'ab'.repeat(32) });
    assert.deepEqual([ggufWrong.status, errorOf(ggufWrong.body).code], [400, 'model_sha256_mismatch']);
  });

  it('refuses a repository model.onnx that links outside the repository, and serves the rest', async () => {
    const good = await kit.request('/v2/repository/models/good/load', { method: 'POST', headers: admin });
    assert.equal(good.status, 200, JSON.stringify(good.body));
    const escaped = await kit.request('/v2/repository/models/escape/load', { method: 'POST', headers: admin });
    assert.ok(escaped.status >= 400 && escaped.status < 500, `${escaped.status} ${JSON.stringify(escaped.body)}`);
    assert.match(errorOf(escaped.body).message, /symlink that leads outside it/);
    const listed = await kit.request('/v2/models/escape/ready', { headers: admin });
    assert.notEqual(listed.status, 200);
  });

  it('logs a symlinked version folder instead of skipping it silently', async () => {
    const root = join(base, 'repo2');
    writeVersion(root, 'm', '1', model);
    symlinkSync(join(allowed, 'scale', '1'), join(root, 'm', '2'));
    const logger = recordingLogger();
    const { sources } = await new ModelRepository({
      models: () => [],
      repository: root,
      builtinModels: false,
      logger,
    }).scan();
    assert.deepEqual(
      sources.map((s) => s.version),
      ['1'],
    );
    assert.ok(
      logger.lines.some((l) => l.level === 'warn' && /symlink .* not followed/.test(l.msg ?? '')),
      JSON.stringify(logger.lines),
    );
  });
});
