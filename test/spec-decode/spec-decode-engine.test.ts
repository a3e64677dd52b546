import { configOf } from '../helpers/config.js';
import { pointOf } from '../helpers/extension-point.js';
import {
  ensureTinyLlama,
  TEST_MODEL_CACHE,
  testBuiltins,
  testFormats,
  testFormatsWithBuiltin,
} from '../helpers/llm.js';
import { strict as assert } from 'node:assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CachePolicySpec, DraftProposerSpec, EventType, ExtensionPointView, GenerateRequest } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { LRU_POLICY } from '@nucleus/plugin-cache-lru';
import { draftMethod, ngramMethod } from '@nucleus/plugin-spec-decode';
import { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { TypedEventBus } from '@nucleus/core/internal/kernel/event-bus';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { REPO_ROOT } from '../helpers/paths.js';
import { generateAll, ofType } from '../llm-engine/engine-helpers.js';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { Exposition } from '../observability/helpers.js';

const read = (name: string) => readFileSync(join(STORIES_DIR, name), 'utf8');
const STORIES = join(STORIES_DIR, 'stories260K.gguf');
const STORY = 'Lily and Ben went to the park. Lily saw a big red ball. Ben saw a big red ball too. Lily and Ben';

/** An extension point as the kernel shows it, holding these contributions. */
function point<T extends { name: string }>(id: string, pluginId: string, ...values: T[]): ExtensionPointView<T> {
  return pointOf(id, pluginId, values);
}

/** A generation engine as the kernel builds it, with these speculative methods (and the LRU prefix cache). */
function engineWith(config: Record<string, unknown>, draftProposers?: ExtensionPointView<DraftProposerSpec>) {
  const logger = createLogger({ level: 'silent' });
  const events = new TypedEventBus(logger);
  const emitted: { type: EventType; payload: unknown }[] = [];
  events.onAny((type, payload) => emitted.push({ type, payload }));
  const values: Record<string, unknown> = {
    'scheduler.batchWindowMs': 20,
    'cache.prefix.maxBytes': 16 * 1024 * 1024,
    ...config,
  };
  const engine = new GenerationEngine({
    formats: config.models === undefined ? testFormatsWithBuiltin : testFormats,
    builtins: testBuiltins,
    config: configOf(values),
    events,
    logger,
    backends: point('backend', 'none'),
    cachePolicies: point<CachePolicySpec>('cachePolicy', 'cache-lru', LRU_POLICY),
    ...(draftProposers && { draftProposers }),
  });
  return { engine, emitted };
}

// The whole engine (worker, loop, proposer loaded in the worker from the plugin's module) on the trained stories260K:
// with speculation it must still give llama2.c's published greedy outputs, and what plain decoding streams.
for (const graphStyle of ['generic', 'contrib'] as const)
  describe(`speculative decoding in the generation engine (stories260K, ${graphStyle} graph)`, () => {
    let fast: ReturnType<typeof engineWith> | undefined;
    let plain: ReturnType<typeof engineWith> | undefined;

    before(async function () {
      requireStories(this);
      fast = engineWith(
        { models: [{ name: 'stories', path: STORIES, graphStyle, speculative: 'ngram' }] },
        point('draftProposer', 'spec-decode', ngramMethod({ promptLookupMin: 1 })),
      );
      plain = engineWith({ models: [{ name: 'stories', path: STORIES, graphStyle }] });
      await Promise.all([fast.engine.start(), plain.engine.start()]);
    });
    after(async () => {
      await fast?.engine.stop();
      await plain?.engine.stop();
    });

    it('gives both greedy references, token for token and byte for byte, decoded together, with drafts accepted', async () => {
      const fromBos = parseIds(read('reference-greedy-200.ids.txt'));
      const fromPrompt = parseIds(read('reference-prompt-64.ids.txt'));
      const forced = fromPrompt.prompt.length - 1;
      const [a, b] = await Promise.all([
        generateAll(fast!.engine, {
          model: 'stories',
          prompt: fromBos.prompt,
          maxTokens: fromBos.next.length,
          temperature: 0,
          ignoreEos: true,
        }),
        generateAll(fast!.engine, {
          model: 'stories',
          prompt: 'Once upon a time',
          maxTokens: fromPrompt.next.length - forced,
          temperature: 0,
          ignoreEos: true,
        }),
      ]);
      assert.deepEqual(a.tokens[0], fromBos.next);
      assert.equal(a.texts[0], read('reference-greedy-200.txt'));
      assert.deepEqual(b.tokens[0], fromPrompt.next.slice(forced));
      assert.equal(`Once upon a time${b.texts[0]}`, read('reference-prompt-64.txt'));
      assert.equal(a.usage!.completionTokens, fromBos.next.length);
      const reports = ofType(fast!.emitted, 'spec.acceptance');
      assert.ok(reports.length > 0 && reports.every((r) => r.model === 'stories' && r.method === 'ngram'));
      const sum = (k: 'drafts' | 'proposedTokens' | 'acceptedTokens') => reports.reduce((n, r) => n + (r[k] ?? 0), 0);
      assert.ok(sum('drafts') > 0 && sum('proposedTokens') >= sum('drafts'));
      assert.ok(
        sum('acceptedTokens') > 0 && sum('acceptedTokens') <= sum('proposedTokens'),
        `accepted ${sum('acceptedTokens')} of ${sum('proposedTokens')}`,
      );
    });

    it('streams what plain decoding streams: pieces, stop sequences, max_tokens, a prefix-cache hit', async () => {
      const stop = 'ball';
      const requests: GenerateRequest[] = [
        { model: 'stories', prompt: STORY, maxTokens: 60, temperature: 0, stop: [stop] },
        { model: 'stories', prompt: STORY, maxTokens: 7, temperature: 0, ignoreEos: true },
        { model: 'stories', prompt: STORY, maxTokens: 120, temperature: 0 },
        // The same again: its prompt now comes from the prefix cache.
        { model: 'stories', prompt: STORY, maxTokens: 120, temperature: 0 },
      ];
      for (const [i, request] of requests.entries()) {
        const f = await generateAll(fast!.engine, request);
        if (i === 3) assert.ok(f.usage!.cachedPromptTokens! > 0, 'the prompt came from the prefix cache');
        const p = await generateAll(plain!.engine, request);
        assert.deepEqual(f.pieces, p.pieces, JSON.stringify(request));
        assert.deepEqual(f.tokens, p.tokens);
        assert.deepEqual(
          f.finishes.map((x) => [x.finishReason, x.text, x.stopSequence]),
          p.finishes.map((x) => [x.finishReason, x.text, x.stopSequence]),
        );
        assert.equal(f.usage!.completionTokens, p.usage!.completionTokens);
      }
      const stopped = await generateAll(fast!.engine, requests[0]!);
      assert.equal(stopped.finishes[0]!.finishReason, 'stop_sequence');
      assert.ok(!stopped.texts[0]!.includes(stop));
    });

    it('samples with a seed reproducibly', async () => {
      const request: GenerateRequest = {
        model: 'stories',
        prompt: STORY,
        maxTokens: 80,
        temperature: 0.8,
        topP: 0.95,
        seed: 11,
        n: 2,
        ignoreEos: true,
      };
      const [a, b] = [await generateAll(fast!.engine, request), await generateAll(fast!.engine, request)];
      assert.deepEqual(a.tokens, b.tokens);
      assert.equal(a.tokens[0]!.length, 80);
      assert.notDeepEqual(a.tokens[0], a.tokens[1]);
      for (const t of a.tokens.flat()) assert.ok(t >= 0 && t < 512);
    });
  });

// models[].speculation end to end: the draft (the model's own first 2 layers) is built by the GGUF format at load,
// opened in the worker and run by the proposer the plugin's module makes there; the output is llama2.c's reference.
describe('self-speculation from models[].speculation.draftLayers in the generation engine (stories260K)', () => {
  let fast: ReturnType<typeof engineWith> | undefined;
  before(async function () {
    requireStories(this);
    fast = engineWith(
      { models: [{ name: 'stories', path: STORIES, graphStyle: 'contrib', speculation: { draftLayers: 2 } }] },
      point('draftProposer', 'spec-decode', ngramMethod(), draftMethod({ autoOffMinAcceptance: 0 })),
    );
    await fast.engine.start();
  });
  after(async () => {
    await fast?.engine.stop();
  });

  it('gives the greedy reference token for token, with drafts from the draft model, and samples reproducibly', async () => {
    const fromBos = parseIds(read('reference-greedy-200.ids.txt'));
    const a = await generateAll(fast!.engine, {
      model: 'stories',
      prompt: fromBos.prompt,
      maxTokens: fromBos.next.length,
      temperature: 0,
      ignoreEos: true,
    });
    assert.deepEqual(a.tokens[0], fromBos.next);
    const sampled: GenerateRequest = {
      model: 'stories',
      prompt: STORY,
      maxTokens: 40,
      temperature: 0.9,
      seed: 5,
      ignoreEos: true,
    };
    const [x, y] = [await generateAll(fast!.engine, sampled), await generateAll(fast!.engine, sampled)];
    assert.deepEqual(x.tokens, y.tokens);
    const reports = ofType(fast!.emitted, 'spec.acceptance');
    assert.ok(reports.length > 0 && reports.every((r) => r.method === 'draft'));
    assert.ok(reports.reduce((n, r) => n + r.proposedTokens, 0) > 0, 'the draft model drafted');
  });

  it('refuses a draft method without a draft model, and a draft with another vocabulary', async () => {
    const missing = engineWith(
      { models: [{ name: 'stories', path: STORIES, speculative: 'draft' }] },
      point('draftProposer', 'spec-decode', draftMethod()),
    );
    const other = engineWith(
      {
        models: [
          {
            name: 'stories',
            path: STORIES,
            speculation: { draft: join(STORIES_DIR, '..', 'llm-oracle', 'llama3-tiny-F16.gguf') },
          },
        ],
      },
      point('draftProposer', 'spec-decode', draftMethod()),
    );
    try {
      await missing.engine.start().catch(() => undefined);
      await assert.rejects(
        missing.engine.generate({ model: 'stories', prompt: 'x', maxTokens: 1 }),
        /draft_model_missing|runs a draft model/,
      );
      await other.engine.start().catch(() => undefined);
      await assert.rejects(
        other.engine.generate({ model: 'stories', prompt: 'x', maxTokens: 1 }),
        /vocabulary of 128256 tokens/,
      );
    } finally {
      await missing.engine.stop();
      await other.engine.stop();
    }
  });
});

describe('models[].speculative names a method no plugin offers', () => {
  for (const [what, proposers, message] of [
    [
      'another method',
      point('draftProposer', 'spec-decode', ngramMethod()),
      /asks for speculative "medusa".*available: ngram/,
    ],
    ['none at all', undefined, /asks for speculative "medusa".*the spec-decode plugin provides ngram/],
  ] as const) {
    it(`fails the model's load with a clear message when plugins offer ${what}`, async () => {
      // The method is checked before the model's graph is built or opened.
      const { engine } = engineWith(
        { models: [{ name: 'tiny', path: await ensureTinyLlama(TEST_MODEL_CACHE), speculative: 'medusa' }] },
        proposers,
      );
      try {
        await engine.start().catch(() => undefined);
        await assert.rejects(engine.generate({ model: 'tiny', prompt: 'x', maxTokens: 1 }), message);
      } finally {
        await engine.stop();
      }
    });
  }
});

describe('a server with the spec-decode plugin', () => {
  let kit: TestKernel | undefined;
  before(async function () {
    requireStories(this);
    kit = await startTestKernel({
      plugins: ['spec-decode', 'api-openai', 'metrics'].map((id) => join(REPO_ROOT, 'plugins', id)),
      config: {
        models: [{ name: 'stories', path: STORIES, speculative: 'ngram' }],
        'plugin.spec-decode': { numSpeculativeTokens: 3, promptLookupMin: 1 },
      },
    });
  });
  after(async () => {
    await kit?.stop();
  });

  it('serves completions and counts drafted and accepted tokens in /metrics', async () => {
    const res = await kit!.request('/v1/completions', {
      body: { model: 'stories', prompt: STORY, max_tokens: 80, temperature: 0, ignore_eos: true },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.equal((res.body as { usage: { completion_tokens: number } }).usage.completion_tokens, 80);
    const labels = { model_name: 'stories', method: 'ngram' };
    let metrics = new Exposition((await kit!.request('/metrics')).body as string);
    // The totals come with the worker's next group of events: wait for them.
    for (let i = 0; i < 50 && !metrics.text.includes('nucleus_spec_decode_num_accepted_tokens_total{'); i++) {
      await new Promise((r) => setTimeout(r, 20));
      metrics = new Exposition((await kit!.request('/metrics')).body as string);
    }
    const drafted = metrics.value('nucleus_spec_decode_num_draft_tokens_total', labels);
    const accepted = metrics.value('nucleus_spec_decode_num_accepted_tokens_total', labels);
    assert.ok(metrics.value('nucleus_spec_decode_num_drafts_total', labels) > 0);
    assert.ok(accepted > 0 && accepted <= drafted, `accepted ${accepted} of ${drafted}`);
  });
});
