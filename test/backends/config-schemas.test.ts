import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { CPU_DEFAULTS } from '@nucleus/plugin-backend-cpu';
import { CUDA_DEFAULTS } from '@nucleus/plugin-backend-cuda';
import { ROCM_DEFAULTS } from '@nucleus/plugin-backend-rocm';
import { REPO_ROOT } from '../helpers/paths.js';

function schemaOf(plugin: string): Record<string, unknown> {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'plugins', plugin, 'package.json'), 'utf8')) as {
    nucleus: { configSchema: Record<string, unknown> };
  };
  return pkg.nucleus.configSchema;
}

describe('backend plugins: config schemas', () => {
  for (const [plugin, defaults] of [
    ['backend-cpu', CPU_DEFAULTS],
    ['backend-cuda', CUDA_DEFAULTS],
    ['backend-rocm', ROCM_DEFAULTS],
  ] as const) {
    it(`${plugin}: an empty section validates to exactly the defaults the code assumes`, () => {
      const validate = new Ajv({ useDefaults: true, strict: true }).compile(schemaOf(plugin));
      const config = {};
      assert.equal(validate(config), true, JSON.stringify(validate.errors));
      assert.deepEqual(config, defaults);
    });
  }

  it('rejects unknown keys and out-of-range values', () => {
    const cpu = new Ajv({ useDefaults: true }).compile(schemaOf('backend-cpu'));
    assert.equal(cpu({ intraOpThreads: 2 }), false);
    assert.equal(cpu({ graphOptimizationLevel: 'max' }), false);
    const cuda = new Ajv({ useDefaults: true }).compile(schemaOf('backend-cuda'));
    assert.equal(cuda({ deviceId: -1 }), false);
    assert.equal(cuda({ tensorrt: { enabled: true, fp16: true } }), false);
    assert.equal(cuda({ tensorrt: { enabled: true } }), true);
  });
});
