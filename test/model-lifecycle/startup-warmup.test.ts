import { strict as assert } from 'node:assert';
import type { RegisteredModel } from '@nucleus/sdk';
import type { TestKernel } from '@nucleus/sdk/testing';
import { admin, startLifecycleKernel } from './lifecycle-fixtures.js';

// The built-in LLMs as /admin/models lists them.
async function builtinLlms(kit: TestKernel): Promise<RegisteredModel[]> {
  const { models } = (await admin(kit, '/admin/models')).body as { models: RegisteredModel[] };
  return models.filter((m) => m.kind === 'llm' && m.origin === 'builtin');
}

describe('startup.warmUp: LLMs opened and warmed before the server is ready', () => {
  it('on, every built-in LLM is open and ready when start returns; off, they wait for their first request', async () => {
    const warm = await startLifecycleKernel({ 'startup.warmUp': true });
    try {
      const llms = await builtinLlms(warm);
      assert.ok(llms.length > 0, 'the built-in plugin contributes LLMs');
      for (const m of llms) assert.deepEqual([m.name, m.state], [m.name, 'ready'], JSON.stringify(m));
      assert.equal((await warm.request('/ready')).status, 200);
    } finally {
      await warm.stop();
    }

    const cold = await startLifecycleKernel({ 'startup.warmUp': false });
    try {
      for (const m of await builtinLlms(cold)) assert.equal(m.state, 'idle', JSON.stringify(m));
    } finally {
      await cold.stop();
    }
  });
});
