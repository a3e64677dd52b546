import { strict as assert } from 'node:assert';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CachePolicySpec, EventType } from '@nucleus/sdk';
import { LRU_POLICY } from '@nucleus/plugin-cache-lru';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { generateAll, ofType, testEngine, viewOf } from '../llm-engine/engine-helpers.js';
import { tempDir } from '../helpers/paths.js';

/** A generation engine with the prefix cache on (the cache-lru plugin's policies), as the kernel builds it. */
function cachedEngine(config: Record<string, unknown> = {}, ...cachePolicies: CachePolicySpec[]) {
  return testEngine(
    { 'startup.warmUp': true, 'cache.prefix.maxBytes': 32 * 1024 * 1024, ...config },
    { cachePolicies: viewOf('cachePolicy', 'cache-lru', ...(cachePolicies.length ? cachePolicies : [LRU_POLICY])) },
  );
}

const prefillTokens = (emitted: { type: EventType; payload: unknown }[]) =>
  ofType(emitted, 'engine.steps')
    .filter((s) => s.phase === 'prefill')
    .reduce((n, s) => n + s.tokens, 0);

const SYSTEM =
  'You are a helpful storyteller. Tell short, kind stories about animals in the forest, with a happy ending and simple words. ';

describe('prefix cache in the generation engine (tiny Llama, worker thread)', () => {
  let engine: GenerationEngine;
  let emitted: { type: EventType; payload: unknown }[];
  before(async () => {
    ({ engine, emitted } = cachedEngine());
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
  });

  it('serves a repeated prefix from the cache: same tokens, fewer prefill tokens, usage and cache.stats say so', async () => {
    const request = {
      model: 'tiny-llama',
      prompt: `${SYSTEM}Once upon a time`,
      maxTokens: 20,
      temperature: 0,
      ignoreEos: true,
    };
    const before = emitted.length;
    const first = await generateAll(engine, request);
    const coldPrefill = prefillTokens(emitted.slice(before));
    assert.equal(first.usage!.cachedPromptTokens, 0);
    assert.equal(coldPrefill, first.usage!.promptTokens);
    const mark = emitted.length;
    const second = await generateAll(engine, request);
    assert.deepEqual(second.tokens, first.tokens);
    assert.equal(second.texts[0], first.texts[0]);
    const cached = second.usage!.cachedPromptTokens!;
    assert.equal(cached, Math.floor((second.usage!.promptTokens - 1) / 16) * 16);
    assert.equal(
      prefillTokens(emitted.slice(mark)),
      second.usage!.promptTokens - cached,
      'only the uncached suffix was prefilled',
    );
    const start = ofType(emitted.slice(mark), 'generation.start')[0]!;
    assert.equal(start.cachedPromptTokens, cached);
    const stats = ofType(emitted, 'cache.stats').at(-1)!;
    assert.equal(stats.name, 'prefix');
    assert.equal(stats.model, 'tiny-llama');
    assert.ok(stats.hits >= cached / 16 && stats.misses > 0 && stats.bytes > 0 && stats.entries! > 0);
    assert.equal(stats.capacityBytes, 32 * 1024 * 1024);
  });

  it('releases the blocks of a conversation when it ends', async () => {
    const turn = {
      model: 'tiny-llama',
      messages: [{ role: 'user', content: 'Tell me a long story about a brave little mouse and a cat.' }],
      maxTokens: 30,
      temperature: 0,
      ignoreEos: true,
      conversationId: 'c-42',
    };
    const reply = await generateAll(engine, turn);
    const next = await generateAll(engine, {
      ...turn,
      messages: [
        ...turn.messages,
        { role: 'assistant', content: reply.texts[0]! },
        { role: 'user', content: 'And then?' },
      ],
    });
    assert.ok(
      next.usage!.cachedPromptTokens! >= 16,
      `the second turn reused the first (${next.usage!.cachedPromptTokens} tokens)`,
    );
    const entries = ofType(emitted, 'cache.stats').at(-1)!.entries!;
    const freed = await engine.releaseConversation('c-42');
    assert.ok(freed !== undefined && freed > 0);
    const after = ofType(emitted, 'cache.stats').at(-1)!;
    assert.ok(after.entries! < entries, "the conversation's blocks are gone");
    assert.equal(await engine.releaseConversation('c-42'), undefined, 'a released conversation is unknown');
    await assert.rejects(engine.generate({ ...turn, conversationId: '' }), /conversation_id/);
  });
});

describe('prefix cache limit in the generation engine', () => {
  it('evicts to stay within cache.prefix.maxBytes', async () => {
    // Two layers × (K, V) × 2 KV heads × 16 tokens × 16 dims × 4 bytes + 16 token ids: 8256 bytes a block.
    const { engine, emitted } = cachedEngine({ 'cache.prefix.maxBytes': 5 * 8256 });
    try {
      await engine.start();
      for (let i = 0; i < 6; i++) {
        await generateAll(engine, {
          model: 'tiny-llama',
          prompt: `${i} ${SYSTEM}`,
          maxTokens: 4,
          temperature: 0,
          ignoreEos: true,
        });
      }
      const stats = ofType(emitted, 'cache.stats');
      assert.ok(
        stats.every((s) => s.bytes <= s.capacityBytes),
        'never over the limit',
      );
      assert.ok(stats.at(-1)!.evictions > 0 && stats.at(-1)!.entries! <= 5);
    } finally {
      await engine.stop();
    }
  });

  it('makes the worker its own policy from the spec a plugin contributes: its module, called with its options', async () => {
    const dir = tempDir('policy-spec');
    const module = join(dir, 'oldest-first.mjs');
    // The factory refuses to make a policy unless the spec's options reached it in the worker.
    writeFileSync(
      module,
      `export default (options) => {
        if (options?.order !== 'oldest-first') throw new Error('options missing: ' + JSON.stringify(options));
        const keys = [];
        return { onInsert: (k) => void keys.push(k), onAccess() {}, victim: () => keys[0],
          onRemove: (k) => { const i = keys.indexOf(k); if (i >= 0) keys.splice(i, 1); } };
      };`,
    );
    const spec: CachePolicySpec = {
      name: 'oldest-first',
      module: pathToFileURL(module).href,
      options: { order: 'oldest-first' },
    };
    const { engine } = cachedEngine({ 'cache.prefix.policy': 'oldest-first' }, LRU_POLICY, spec);
    try {
      await engine.start();
      const request = { model: 'tiny-llama', prompt: SYSTEM, maxTokens: 2, temperature: 0 };
      await generateAll(engine, request);
      const again = await generateAll(engine, request);
      assert.ok(again.usage!.cachedPromptTokens! > 0, 'the second request was served from the cache');
    } finally {
      await engine.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('runs without a prefix cache when no plugin contributes the configured policy', async () => {
    const { engine, emitted } = cachedEngine({ 'cache.prefix.policy': 'lfu' });
    try {
      await engine.start();
      const out = await generateAll(engine, { model: 'tiny-llama', prompt: SYSTEM, maxTokens: 3, temperature: 0 });
      assert.equal(out.usage!.cachedPromptTokens, undefined);
      assert.equal(ofType(emitted, 'cache.stats').length, 0);
    } finally {
      await engine.stop();
    }
  });
});

for (const graphStyle of ['generic', 'contrib'] as const)
  describe(`prefix cache on stories260K, ${graphStyle} graph (llama2.c reference output)`, () => {
    let engine: GenerationEngine | undefined;
    let emitted: { type: EventType; payload: unknown }[];
    before(async function () {
      requireStories(this);
      ({ engine, emitted } = cachedEngine({
        models: [{ name: 'stories', path: join(STORIES_DIR, 'stories260K.gguf'), graphStyle }],
      }));
      await engine.start();
    });
    after(async () => {
      await engine?.stop();
    });

    it('continues the greedy reference exactly from cached and from computed prefixes', async () => {
      const ref = parseIds(readFileSync(join(STORIES_DIR, 'reference-greedy-200.ids.txt'), 'utf8'));
      // The reference is the model's own greedy continuation of BOS, so any start of it continues the same way.
      const run = (n: number) =>
        generateAll(engine!, {
          model: 'stories',
          prompt: [...ref.prompt, ...ref.next.slice(0, n)],
          maxTokens: 40,
          temperature: 0,
          ignoreEos: true,
        });
      const mark = emitted.length;
      const cold = await run(100);
      const warm = await run(100);
      const longer = await run(130);
      assert.deepEqual(cold.tokens[0], ref.next.slice(100, 140));
      assert.deepEqual(warm.tokens[0], ref.next.slice(100, 140));
      assert.deepEqual(longer.tokens[0], ref.next.slice(130, 170));
      assert.equal(cold.usage!.cachedPromptTokens, 0);
      assert.equal(warm.usage!.cachedPromptTokens, 96);
      // The first run kept its prompt and its output: the longer prompt is all cached but its last block.
      assert.equal(longer.usage!.cachedPromptTokens, 128);
      assert.equal(prefillTokens(emitted.slice(mark)), 101 + 5 + 3);
    });
  });
