import { strict as assert } from 'node:assert';
import type { WorkerReplicaStatus } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { pluginDir } from '../observability/helpers.js';

const ADMIN = 'admin-key-0123456789';
const auth = { authorization: `Bearer ${ADMIN}` };

interface StatusLlm {
  name: string;
  running: number;
  waiting: number;
  graphStyle?: string;
  stepRecovery?: { cacheFlushes: number; splits: number; failedAlone: number };
  workers?: (WorkerReplicaStatus & { running: number; waiting: number })[];
}

// The server as configured: the scheduler plugin's prefix-affinity routes, each replica a process of its own.
describe('LLM replicas over HTTP (api-openai, api-kserve, scheduler, cache-lru; process isolation)', () => {
  let kit: TestKernel | undefined;
  before(async () => {
    kit = await startTestKernel({
      plugins: ['api-openai', 'api-kserve', 'scheduler', 'cache-lru'].map(pluginDir),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: { 'workers.perModel': 2, 'workers.isolation': 'process', 'cache.prefix.maxBytes': 8 * 1024 * 1024 },
    });
  });
  after(async () => {
    await kit?.stop();
  });

  const llm = async (): Promise<StatusLlm> =>
    ((await kit!.request('/status', { headers: auth })).body as { llms: StatusLlm[] }).llms.find(
      (m) => m.name === 'tiny-llama',
    )!;

  it('/status shows each replica (pid, state, running, waiting, restarts); a conversation stays on its replica; workers.perModel shrinks it while serving', async () => {
    const ask = (conversation: string, messages: { role: string; content: string }[]) =>
      kit!.request('/v1/chat/completions', {
        body: { model: 'tiny-llama', messages, max_tokens: 8, temperature: 0, conversation_id: conversation },
        headers: auth,
      });
    const question = {
      role: 'user',
      content: 'Tell me about the brave little mouse who lived under the old oak tree.',
    };
    const first = await ask('talk-7', [question]);
    assert.equal(first.status, 200, JSON.stringify(first.body));
    const before = (await llm()).workers!;
    assert.deepEqual(
      before.map((w) => [w.id, w.isolation, w.state, w.running, w.waiting, w.restarts]),
      [
        [0, 'process', 'serving', 0, 0, 0],
        [1, 'process', 'serving', 0, 0, 0],
      ],
    );
    assert.ok(
      before.every((w) => w.pid !== undefined && w.pid !== process.pid) && before[0]!.pid !== before[1]!.pid,
      'a process each',
    );
    // The built-in model on the CPU backend runs the contrib graph.
    assert.equal((await llm()).graphStyle, 'contrib');
    assert.deepEqual((await llm()).stepRecovery, { cacheFlushes: 0, splits: 0, failedAlone: 0 }, 'no step failed');
    // Each replica's process measures its own memory; /monitor/memory lists it beside the tensor models'.
    const memory = (await kit!.request('/monitor/memory', { headers: auth })).body as {
      llms: {
        name: string;
        isolation?: string;
        workers: number;
        measuredBytes?: number;
        replicas?: { id: number; pid?: number; rssBytes: number }[];
      }[];
    };
    const measured = memory.llms.find((m) => m.name === 'tiny-llama')!;
    assert.equal(measured.isolation, 'process', JSON.stringify(memory.llms));
    assert.equal(measured.workers, 2);
    assert.deepEqual(
      measured.replicas!.map((r) => [r.id, r.pid]),
      before.map((w) => [w.id, w.pid]),
    );
    assert.ok(
      measured.replicas!.every((r) => r.rssBytes > 1024 * 1024),
      JSON.stringify(measured.replicas),
    );
    assert.equal(
      measured.measuredBytes,
      measured.replicas!.reduce((n, r) => n + r.rssBytes, 0),
    );
    const at = before.find((w) => w.runs === 1)!.id;
    const answer = (first.body as { choices: { message: { content: string } }[] }).choices[0]!.message.content;
    const second = await ask('talk-7', [
      question,
      { role: 'assistant', content: answer },
      { role: 'user', content: 'What did it eat?' },
    ]);
    assert.equal(second.status, 200);
    assert.ok(
      (second.body as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details
        .cached_tokens >= 16,
      "the second turn hit the first turn's replica cache",
    );
    assert.equal((await llm()).workers!.find((w) => w.id === at)!.runs, 2, 'both turns on one replica');

    const patch = await kit!.request('/admin/config', {
      method: 'PATCH',
      body: { workers: { perModel: 1 } },
      headers: auth,
    });
    assert.equal(patch.status, 200, JSON.stringify(patch.body));
    for (let i = 0; i < 2000 && (await llm()).workers!.length !== 1; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(
      (await llm()).workers!.map((w) => w.id),
      [0],
    );
    const after = await ask('talk-8', [question]);
    assert.equal(after.status, 200);
  });
});
