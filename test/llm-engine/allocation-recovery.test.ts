import { ensureTinyLlama } from '../helpers/llm.js';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { strict as assert } from 'node:assert';
import type { EventType, GenerateRequest } from '@nucleus/sdk';
import { NucleusError } from '@nucleus/sdk';
import { LRU_POLICY } from '@nucleus/plugin-cache-lru';
import { isAllocationFailure } from '@nucleus/core/internal/engine/allocation-failure';
import {
  realAllocationFailure,
  type GenerationFaultInjection,
} from '@nucleus/core/internal/engine/llm/generation/fault-injecting-runner';
import { generateAll, ofType, testEngine, viewOf, type Generated } from './engine-helpers.js';

// The tiny Llama's KV per token: 2 layers × key and value × 2 heads × 16 dims × 4 bytes.
const KV_BYTES_PER_TOKEN = 2 * 2 * 2 * 16 * 4;

/**
 * An engine on the tiny Llama whose runs fail as `faults` says (none: the reference): the built-in model, which on
 * the CPU backend is a contrib graph, or for `generic` its export folder configured as a model.
 */
async function engineWith(
  style: 'generic' | 'contrib',
  faults: GenerationFaultInjection | undefined,
  config: Record<string, unknown> = {},
) {
  const model = style === 'generic' ? { models: [{ name: 'tiny-llama', path: await ensureTinyLlama() }] } : {};
  return testEngine(
    {
      'startup.warmUp': true,
      'scheduler.batchWindowMs': 300,
      'cache.prefix.maxBytes': 32 * 1024 * 1024,
      ...model,
      ...config,
    },
    { cachePolicies: viewOf('cachePolicy', 'cache-lru', LRU_POLICY), ...(faults && { faultInjection: faults }) },
  );
}

/** A prompt of `length` token ids, different for each `seed`. */
function prompt(length: number, seed: number): number[] {
  return Array.from({ length }, (_, i) => 3 + ((i * 7 + seed * 13) % 250));
}

const request = (ids: number[], maxTokens: number): GenerateRequest => ({
  model: 'tiny-llama',
  prompt: ids,
  maxTokens,
  temperature: 0,
  ignoreEos: true,
});

describe('allocation failures in generation steps', () => {
  it('recognises onnxruntime allocation failures: a real one from ORT, and the messages of other allocators', async () => {
    const real = await realAllocationFailure();
    assert.match(real.message, /Failed to allocate memory for requested buffer of size \d+/);
    assert.ok(isAllocationFailure(real));
    assert.ok(
      isAllocationFailure(
        new Error(
          "Non-zero status code returned while running ConstantOfShape node. Name:'ConstantOfShape' Status Message: std::bad_alloc",
        ),
      ),
    );
    assert.ok(isAllocationFailure(new Error('CUDA failure 2: out of memory ; GPU=0 ; hostname=x')));
    assert.ok(isAllocationFailure(new Error('Available memory of 1024 is smaller than requested bytes of 4096')));
    // V8 failing a buffer as a contrib runner grows its own: 1 PiB, more than a 64-bit process can address.
    assert.throws(
      () => new ArrayBuffer(2 ** 50),
      (err) => isAllocationFailure(err),
    );
    assert.ok(!isAllocationFailure(new RangeError('Invalid typed array length: -1')));
    assert.ok(
      !isAllocationFailure(
        new Error('indices element out of data bounds, idx=300 must be within the inclusive range [-256,255]'),
      ),
    );
  });
});

// Both graph styles, as served: the generic graph's steps are split by gathering rows, the contrib graph's by running
// ranges of the rows its runner keeps.
for (const style of ['generic', 'contrib'] as const)
  describe(`allocation failures in generation steps (tiny Llama, ${style} graph, a simulated memory limit failing a real ORT allocation)`, () => {
    let reference: GenerationEngine | undefined;
    let engine: GenerationEngine | undefined;
    before(async () => {
      ({ engine: reference } = await engineWith(style, undefined, { 'cache.prefix.enabled': false }));
      await reference.start();
      await generateAll(reference, request(prompt(4, 0), 1));
      assert.equal(reference.get('tiny-llama').graphStyle, style);
    });
    after(async () => {
      await reference?.stop();
    });
    afterEach(async () => {
      await engine?.stop();
      engine = undefined;
    });

    it('empties the prefix cache and retries a step that could not allocate; the outputs are those of a run without limit', async () => {
      const first = [prompt(100, 1), prompt(100, 2)];
      const pair = [prompt(120, 3), prompt(120, 4)];
      const expected: Generated[] = [];
      for (const ids of pair) expected.push(await generateAll(reference!, request(ids, 8)));
      // The two cached prompts (~100 KB) plus the pair's step (~130 KB) exceed the limit; the step alone does not.
      const limit = 200 * 1024;
      let emitted: { type: EventType; payload: unknown }[];
      ({ engine, emitted } = await engineWith(style, { memoryLimitBytes: limit }, { 'scheduler.batchWindowMs': 100 }));
      await engine.start();
      for (const ids of first) await generateAll(engine, request(ids, 8));
      const cache = () => ofType(emitted, 'cache.stats').at(-1)!;
      assert.ok(cache().bytes + 2 * 121 * KV_BYTES_PER_TOKEN > limit, `the cache holds ${cache().bytes} bytes`);
      assert.equal(cache().evictions, 0);
      const got = await Promise.all(pair.map((ids) => generateAll(engine!, request(ids, 8))));
      got.forEach((g, i) => assert.deepEqual(g.tokens, expected[i]!.tokens, `prompt ${i}`));
      assert.ok(cache().evictions > 0, 'the cache gave its blocks up');
      // The worker's recovery counters reach the model's info and the engine's stats.
      const recovery = engine.get('tiny-llama').stepRecovery!;
      assert.ok(recovery.cacheFlushes >= 1, JSON.stringify(recovery));
      assert.equal(recovery.failedAlone, 0);
      assert.deepEqual(ofType(emitted, 'engine.stats').at(-1)!.stepRecovery, recovery);
    });

    it('splits a batch that cannot allocate even with the cache empty, and every sequence completes as it would alone', async () => {
      const prompts = [0, 1, 2, 3].map((i) => prompt(60, 10 + i));
      const expected: Generated[] = [];
      for (const ids of prompts) expected.push(await generateAll(reference!, request(ids, 16)));
      // Four rows of 76 positions need ~155 KB; two need ~78 KB.
      let emitted: { type: EventType; payload: unknown }[];
      ({ engine, emitted } = await engineWith(
        style,
        { memoryLimitBytes: 100 * 1024 },
        { 'cache.prefix.enabled': false },
      ));
      await engine.start();
      assert.deepEqual(engine.get('tiny-llama').stepRecovery, { cacheFlushes: 0, splits: 0, failedAlone: 0 });
      const got = await Promise.all(prompts.map((ids) => generateAll(engine!, request(ids, 16))));
      got.forEach((g, i) => assert.deepEqual(g.tokens, expected[i]!.tokens, `prompt ${i}`));
      const recovery = engine.get('tiny-llama').stepRecovery!;
      assert.ok(recovery.splits >= 1, JSON.stringify(recovery));
      assert.equal(recovery.cacheFlushes, 0, 'no cache to empty');
      assert.equal(recovery.failedAlone, 0);
      assert.deepEqual(ofType(emitted, 'engine.stats').at(-1)!.stepRecovery, recovery);
    });

    it('fails only the sequence that cannot allocate even alone, with 503 insufficient_memory; the others in its batch complete', async () => {
      const small = [prompt(40, 20), prompt(40, 21)];
      const expected: Generated[] = [];
      for (const ids of small) expected.push(await generateAll(reference!, request(ids, 8)));
      ({ engine } = await engineWith(style, { memoryLimitBytes: 100 * 1024 }, { 'cache.prefix.enabled': false }));
      await engine.start();
      // 220 positions need ~112 KB: more than the limit on their own.
      const [big, ...rest] = await Promise.allSettled([
        generateAll(engine, request(prompt(220, 22), 8)),
        ...small.map((ids) => generateAll(engine!, request(ids, 8))),
      ]);
      assert.equal(big!.status, 'rejected');
      const err = (big as PromiseRejectedResult).reason as NucleusError;
      assert.ok(err instanceof NucleusError);
      assert.equal(err.status, 503);
      assert.equal(err.code, 'insufficient_memory');
      assert.equal(err.headers['retry-after'], '1');
      assert.match(err.message, /even in a step of its own.*Failed to allocate memory for requested buffer/);
      rest.forEach((r, i) => {
        assert.equal(r.status, 'fulfilled', `small prompt ${i}: ${String((r as PromiseRejectedResult).reason)}`);
        assert.deepEqual((r as PromiseFulfilledResult<Generated>).value.tokens, expected[i]!.tokens);
      });
      // The engine goes on serving.
      assert.deepEqual((await generateAll(engine, request(small[0]!, 8))).tokens, expected[0]!.tokens);
      const recovery = engine.get('tiny-llama').stepRecovery!;
      assert.equal(recovery.failedAlone, 1, JSON.stringify(recovery));
      assert.ok(recovery.splits >= 1);
    });
  });
