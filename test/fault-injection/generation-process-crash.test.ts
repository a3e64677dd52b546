import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import type { NucleusEvents } from '@nucleus/sdk';
import { startTestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { within } from '../engine/engine-fixtures.js';
import { generateAll, ofType, testEngine } from '../llm-engine/engine-helpers.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');

describe('fault injection: the generation worker as a child process (workers.isolation = process)', () => {
  it('a killed worker process is restarted: requests that had not streamed a token are run again and succeed, the streaming one ends with an error event, none hangs', async () => {
    // One sequence per step, so the requests behind the first wait inside the worker without a token.
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      config: { 'workers.isolation': 'process', 'scheduler.batchWindowMs': 5, 'scheduler.maxBatchSize': 1 },
    });
    const health: NucleusEvents['worker.health'][] = [];
    kit.kernel.events.on('worker.health', (e) => health.push(e));
    try {
      const post = (stream: boolean, maxTokens: number, onFirstChunk?: () => void) =>
        fetch(new URL('/v1/completions', kit.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            model: 'tiny-llama',
            prompt: 'Once',
            max_tokens: maxTokens,
            ignore_eos: true,
            stream,
          }),
          signal: AbortSignal.timeout(60_000),
        }).then(async (res) => {
          let text = '';
          const decoder = new TextDecoder();
          for await (const chunk of res.body!) {
            text += decoder.decode(chunk as Uint8Array, { stream: true });
            if (text.includes('"text"')) onFirstChunk?.();
          }
          return { status: res.status, text };
        });
      const warm = await post(false, 8);
      assert.equal(warm.status, 200, warm.text);
      // All four must hold a running slot at once. On a loaded machine the streaming one can end before the others
      // are admitted: then nothing was killed yet, and the set-up runs again once they are done.
      let first!: ReturnType<typeof post>;
      let behind!: ReturnType<typeof post>[];
      for (let attempt = 1; ; attempt++) {
        let streaming!: () => void;
        const started = new Promise<void>((resolve) => (streaming = resolve));
        let firstEnded = false;
        first = post(true, 240, () => streaming());
        const ended = () => {
          firstEnded = true;
        };
        first.then(ended, ended);
        await started;
        behind = [post(false, 40), post(false, 40), post(true, 40)];
        for (let i = 0; i < 5000 && !firstEnded && kit.kernel.generation.admission.running < 4; i++)
          await new Promise((r) => setTimeout(r, 1));
        if (kit.kernel.generation.admission.running === 4) break;
        assert.ok(attempt < 3, 'all four requests hold a running slot');
        await Promise.all([first, ...behind]);
      }
      await kit.kernel.generation.killWorker('tiny-llama');
      const [a, b, c, d] = await within(Promise.all([first, ...behind]), 60_000, 'requests on the killed worker');
      assert.equal(a!.status, 200);
      assert.match(
        a!.text,
        /worker_exited/,
        `the request already streaming ends with an error event: ${a!.text.slice(-300)}`,
      );
      for (const r of [b!, c!]) {
        assert.equal(r.status, 200, r.text);
        assert.equal(JSON.parse(r.text).choices[0].finish_reason, 'length', 'run again on the new worker, to the end');
      }
      assert.equal(d!.status, 200);
      assert.doesNotMatch(d!.text, /worker_exited/);
      assert.match(d!.text, /"finish_reason":"length"/);
      assert.deepEqual(
        health.map((h) => [h.healthy, h.backoffMs]),
        [
          [false, 0],
          [true, undefined],
        ],
      );
      assert.match(health[0]!.reason ?? '', /SIGKILL/);
      const worker = kit.kernel.generation.get('tiny-llama').worker!;
      assert.equal(worker.isolation, 'process');
      assert.equal(worker.state, 'serving');
      assert.equal(worker.restarts, 1);
      assert.ok(worker.pid !== undefined && worker.pid !== process.pid);
      const next = await post(false, 8);
      assert.equal(next.status, 200, next.text);
      assert.deepEqual(kit.kernel.generation.admission, { running: 0, waiting: 0, shedding: false });
      assert.ok(
        (kit.kernel.generation.get('tiny-llama').worker!.rssBytes ?? 0) > 10_000_000,
        'the worker process reports its memory',
      );
    } finally {
      await kit.stop();
    }
  });

  it('non-streamed requests that had produced tokens when the worker process died are run again from the start and answer 200, their partial output dropped', async () => {
    const kit = await startTestKernel({
      plugins: [API_PLUGIN],
      config: { 'workers.isolation': 'process', 'scheduler.batchWindowMs': 5 },
    });
    const order: string[] = [];
    kit.kernel.events.on('worker.health', (e) => order.push(e.healthy ? 'serving again' : 'died'));
    try {
      const post = (path: string, body: Record<string, unknown>) =>
        fetch(new URL(path, kit.url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'tiny-llama', max_tokens: 200, ignore_eos: true, temperature: 0, ...body }),
          signal: AbortSignal.timeout(60_000),
        }).then(async (res) => ({ status: res.status, text: await res.text() }));
      const warm = await post('/v1/completions', { prompt: 'Once', max_tokens: 4 });
      assert.equal(warm.status, 200, warm.text);
      // Killed as the first group of tokens arrives with both running: both have produced tokens, nobody has seen them.
      let killed = false;
      kit.kernel.events.on('engine.steps', (e) => {
        if (e.phase !== 'decode') return;
        if (killed) {
          order.push('step');
          return;
        }
        if (kit.kernel.generation.admission.running !== 2) return;
        killed = true;
        order.push('kill');
        void kit.kernel.generation.killWorker('tiny-llama');
      });
      // On a loaded machine one can end before the other starts: nothing is killed then, and the pair is sent again.
      let openai!: Awaited<ReturnType<typeof post>>;
      let native!: Awaited<ReturnType<typeof post>>;
      for (let attempt = 1; attempt <= 3 && !killed; attempt++) {
        [openai, native] = await within(
          Promise.all([post('/v1/completions', { prompt: 'Once upon' }), post('/generate', { prompt: 'Once upon a' })]),
          60_000,
          'requests on the killed worker',
        );
      }
      assert.ok(killed, 'the worker was killed while both ran');
      assert.equal(openai.status, 200, openai.text);
      assert.equal(native.status, 200, native.text);
      const completion = JSON.parse(openai.text) as {
        choices: { finish_reason: string }[];
        usage: { completion_tokens: number };
      };
      assert.equal(completion.choices[0]!.finish_reason, 'length');
      assert.equal(completion.usage.completion_tokens, 200, 'only the second run is counted');
      const generation = JSON.parse(native.text) as {
        choices: { token_ids: number[]; finish_reason: string }[];
        usage: { completion_tokens: number };
      };
      assert.equal(generation.choices[0]!.finish_reason, 'length');
      assert.equal(
        generation.choices[0]!.token_ids.length,
        200,
        'the tokens of the cut-short run are not in the answer',
      );
      assert.equal(generation.usage.completion_tokens, 200);
      // They ran again on the restarted worker: its steps came after it served again.
      const restarted = order.indexOf('serving again');
      assert.ok(order.indexOf('died') > order.indexOf('kill'), order.join(', '));
      assert.ok(restarted > 0 && order.indexOf('step', restarted) > restarted, order.join(', '));
      assert.equal(kit.kernel.generation.get('tiny-llama').worker!.restarts, 1);
    } finally {
      await kit.stop();
    }
  });

  it('workers.maxRestarts: 1 gives a replica that dies again before a step up at its second death; the next request starts it again', async () => {
    const { engine, emitted } = testEngine({ 'workers.isolation': 'process', 'workers.maxRestarts': 1 });
    await engine.start();
    try {
      const request = { model: 'tiny-llama', prompt: 'Once', maxTokens: 4, temperature: 0, ignoreEos: true };
      await generateAll(engine, request);
      const health = () => ofType(emitted, 'worker.health');
      const until = async (check: () => boolean, what: string) => {
        for (let i = 0; i < 3000 && !check(); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(check(), what);
      };
      await engine.killWorker('tiny-llama');
      await until(() => health().some((h) => h.healthy), 'the replica serving again');
      await engine.killWorker('tiny-llama');
      await until(() => health().length === 3, 'the second death being seen');
      assert.deepEqual(
        health().map((h) => [h.healthy, h.backoffMs, h.gaveUp]),
        [
          [false, 0, undefined],
          [true, undefined, undefined],
          [false, undefined, true],
        ],
      );
      assert.equal(engine.get('tiny-llama').worker!.state, 'failed');
      assert.equal((await generateAll(engine, request)).tokens[0]!.length, 4);
    } finally {
      await engine.stop();
    }
  });
});
