import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';
import { writePlugin } from '../helpers/plugin-fixtures.js';
import { scaleModel, writeVersion } from '../engine/engine-fixtures.js';
import { API_KSERVE } from './kserve-fixtures.js';

describe('inference hooks and model routers around the KServe and native routes', () => {
  let kit: TestKernel;
  let dir: string;
  before(async () => {
    dir = tempDir('kserve-hooks');
    writeVersion(`${dir}/models`, 'scale', '1', scaleModel(1));
    writeVersion(`${dir}/models`, 'scale', '2', scaleModel(2));
    writePlugin(`${dir}/plugins`, {
      id: 'canary',
      activate: `
        ctx.contribute(ExtensionPoints.router, { name: 'canary', route: (r) => r.headers['x-canary'] === '1' ? { model: r.model, version: '1' } : undefined });
        ctx.contribute(ExtensionPoints.hooks, {
          preInference: (input) => (input.model === 'alias' ? { ...input, model: 'scale' } : input),
          postInference: (output) => ({ ...output, body: { ...output.body, servedBy: output.model + '@' + (output.version ?? 'default') } }),
        });`,
    });
    kit = await startTestKernel({
      plugins: [API_KSERVE, `${dir}/plugins`],
      config: { modelRepository: `${dir}/models` },
    });
  });
  after(async () => {
    await kit.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const v2 = { inputs: [{ name: 'x', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] };

  it('lets a router pick the version from a header, and post hooks add to the response', async () => {
    const plain = await kit.request('/v2/models/scale/infer', { body: v2 });
    assert.deepEqual(
      [(plain.body as { model_version: string }).model_version, (plain.body as { servedBy: string }).servedBy],
      ['2', 'scale@default'],
    );
    const canary = await kit.request('/v2/models/scale/infer', { body: v2, headers: { 'x-canary': '1' } });
    assert.equal(canary.status, 200);
    const body = canary.body as { model_version: string; outputs: Array<{ data: number[] }>; servedBy: string };
    assert.deepEqual([body.model_version, body.outputs[0]!.data, body.servedBy], ['1', [1, 2, 3, 4], 'scale@1']);
  });

  it('lets a pre hook rewrite the model a native request names', async () => {
    const res = await kit.request('/infer', { body: { model: 'alias', inputs: { x: [[1, 1, 1, 1]] } } });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual((res.body as { model: string; outputs: { y: number[][] } }).outputs.y, [[2, 2, 2, 2]]);
    assert.equal((res.body as { servedBy: string }).servedBy, 'scale@default');
  });
});
