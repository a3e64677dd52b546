import { strict as assert } from 'node:assert';
import { readFileSync, rmSync } from 'node:fs';
import type { Nucleus } from '@nucleus/core';
import type { NucleusError } from '@nucleus/sdk';
import { tempDir } from '../helpers/paths.js';
import { builtinModel, f32, floats, startKernel, writeVersion } from '../engine/engine-fixtures.js';

describe('fault injection: corrupt model files', () => {
  let kernel: Nucleus | undefined;
  let root: string | undefined;
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('a model of bad bytes and one whose sha256 does not match fail with clear reasons; the good one keeps serving', async () => {
    root = tempDir('corrupt');
    const good = readFileSync((await builtinModel('mlp-classifier')).modelPath);
    writeVersion(root, 'good', '1', good);
    writeVersion(
      root,
      'garbage',
      '1',
      Uint8Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff),
    );
    writeVersion(root, 'tampered', '1', good, { sha256: '0'.repeat(64) });
    kernel = await startKernel({ modelRepository: root });
    assert.equal(kernel.inference.get('good').state, 'ready');
    const garbage = kernel.inference.get('garbage');
    assert.equal(garbage.state, 'failed');
    assert.ok((garbage.reason ?? '').length > 0);
    const tampered = kernel.inference.get('tampered');
    assert.equal(tampered.state, 'failed');
    assert.match(tampered.reason ?? '', /sha|checksum/i);
    await assert.rejects(
      kernel.inference.infer({ model: 'tampered', inputs: {} }),
      (err: NucleusError) => err.status === 503 && /tampered/.test(err.message),
    );
    const health = kernel.health.report();
    assert.equal(health.status, 'degraded');
    assert.ok(
      health.conditions.some((c) => /tampered/.test(c.reason)) &&
        health.conditions.some((c) => /garbage/.test(c.reason)),
    );
    const input = kernel.inference.get('good').inputs[0]!;
    const width = input.shape[1]!;
    const out = await kernel.inference.infer({
      model: 'good',
      inputs: { [input.name]: f32(floats(width), [1, width]) },
    });
    assert.equal(out.model, 'good');
  });
});
