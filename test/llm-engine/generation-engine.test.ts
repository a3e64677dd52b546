import { strict as assert } from 'node:assert';
import { NucleusError } from '@nucleus/sdk';
import type { GenerationEngine } from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { ensureTinyLlama } from '../helpers/llm.js';
import { generateAll, ofType, testEngine, type Generated } from './engine-helpers.js';
import { until } from './helpers.js';

const PROMPTS = [
  'Once upon a time',
  'The little dog was running',
  'Lily',
  'She liked to play in the park with her friends.',
  'Café, naïve',
  'and the birds were singing',
  'They were happy and they played all day.',
  'One day the sun was shining',
];

async function rejects(p: Promise<unknown>, status: number, message?: RegExp): Promise<NucleusError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof NucleusError, `a NucleusError, not ${String(err)}`);
    assert.equal(err.status, status, err.message);
    if (message) assert.match(err.message, message);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('GenerationEngine (worker threads, real ORT, tiny Llama)', () => {
  let engine: GenerationEngine;
  let emitted: ReturnType<typeof testEngine>['emitted'];

  before(async () => {
    ({ engine, emitted } = testEngine({ 'scheduler.batchWindowMs': 20 }));
    await engine.start();
  });
  after(async () => {
    await engine?.stop();
  });

  it('serves the built-in chat and embedding models, each starting on its first request', async () => {
    const names = engine.list().map((m) => `${m.name}:${m.kind}:${m.state}`);
    assert.deepEqual(names.sort(), ['bert-tiny:embedding:idle', 'stories260K:llm:idle', 'tiny-llama:llm:idle']);
    const out = await generateAll(engine, {
      model: 'tiny-llama',
      prompt: 'Hello',
      maxTokens: 4,
      temperature: 0,
      ignoreEos: true,
    });
    assert.equal(out.tokens[0]!.length, 4);
    assert.equal(engine.get('tiny-llama').state, 'ready');
    assert.equal(engine.get('tiny-llama').maxContext, 256);
  });

  it('decodes concurrent requests in shared steps with the same tokens each gets alone', async () => {
    const request = (prompt: string) => ({
      model: 'tiny-llama',
      prompt,
      maxTokens: 96,
      temperature: 0,
      ignoreEos: true,
    });
    const alone: Generated[] = [];
    for (const p of PROMPTS) alone.push(await generateAll(engine, request(p)));
    const stepsBefore = ofType(emitted, 'engine.steps').length;
    const together = await Promise.all(
      PROMPTS.map(async (p, i) => {
        // Within one batch window of each other, and long enough to overlap: the first ones start at once on the idle
        // engine, the rest join them while they run.
        await new Promise((r) => setTimeout(r, (i % 4) * 5));
        return generateAll(engine, request(p));
      }),
    );
    together.forEach((t, i) => {
      assert.deepEqual(t.tokens[0], alone[i]!.tokens[0], `prompt ${i}`);
      assert.equal(t.texts[0], alone[i]!.texts[0]);
      assert.deepEqual(t.usage, alone[i]!.usage);
    });
    const decode = ofType(emitted, 'engine.steps')
      .slice(stepsBefore)
      .filter((s) => s.phase === 'decode');
    assert.ok(Math.max(...decode.map((s) => s.sequences)) > 2, 'steps ran several sequences at once');
  });

  it('repeats a seeded sampled generation exactly; its choices differ from each other', async () => {
    const request = {
      model: 'tiny-llama',
      prompt: 'Once upon a time',
      maxTokens: 16,
      temperature: 1,
      topP: 0.95,
      seed: 99,
      n: 3,
      ignoreEos: true,
    };
    const a = await generateAll(engine, request);
    const b = await generateAll(engine, request);
    assert.deepEqual(a.tokens, b.tokens);
    assert.equal(new Set(a.tokens.map((t) => t.join(','))).size, 3, 'three different choices');
    assert.deepEqual(a.usage, {
      promptTokens: a.usage!.promptTokens,
      completionTokens: 48,
      totalTokens: a.usage!.promptTokens + 48,
    });
  });

  it('ends at a stop sequence that spans tokens, and never sends any part of it', async () => {
    const base = { model: 'tiny-llama', prompt: 'She liked to play', maxTokens: 40, temperature: 0, ignoreEos: true };
    const full = await generateAll(engine, base);
    const pieces = full.pieces[0]!;
    // A stop string made of the end of one token's text and the start of the next one's.
    const k = pieces.findIndex((p, i) => i > 2 && p.length >= 1 && (pieces[i + 1]?.length ?? 0) >= 1);
    assert.ok(k > 0, 'the output has two neighbouring tokens with text');
    const stop = pieces[k]!.slice(-1) + pieces[k + 1]!.slice(0, 1);
    const text = full.texts[0]!;
    const expected = text.slice(0, text.indexOf(stop));
    const stopped = await generateAll(engine, { ...base, stop: ['never-occurs', stop] });
    assert.equal(stopped.texts[0], expected);
    assert.equal(stopped.finishes[0]!.finishReason, 'stop_sequence');
    assert.equal(stopped.finishes[0]!.stopSequence, stop);
    for (const piece of stopped.pieces[0]!) assert.ok(!piece.includes(stop));
    // Everything sent is a prefix of the text before the stop: held-back text was never sent early.
    let sent = '';
    for (const piece of stopped.pieces[0]!) {
      sent += piece;
      assert.ok(expected.startsWith(sent), `sent ${JSON.stringify(sent)} runs past ${JSON.stringify(expected)}`);
    }
  });

  it('answers 400 with the limit when prompt and max_tokens exceed the context window, 404 for an unknown model', async () => {
    await rejects(
      engine.generate({ model: 'tiny-llama', prompt: 'Hello there', maxTokens: 300 }),
      400,
      /maximum context length is 256 tokens/,
    );
    await rejects(
      engine.generate({ model: 'tiny-llama', prompt: 'x'.repeat(600) }),
      400,
      /maximum context length is 256 tokens/,
    );
    await rejects(engine.generate({ model: 'gpt-17', prompt: 'Hello' }), 404, /gpt-17/);
    await rejects(engine.generate({ model: 'bert-tiny', prompt: 'Hello' }), 400, /embedding model/);
    await rejects(
      engine.generate({ model: 'tiny-llama', prompt: 'a', messages: [{ role: 'user', content: 'b' }] }),
      400,
    );
    await rejects(engine.generate({ model: 'tiny-llama', prompt: 'a', n: 0 }), 400, /n must be/);
    await rejects(engine.generate({ model: 'tiny-llama', prompt: [1, 99999] }), 400, /outside the vocabulary/);
  });

  it('drops an aborted generation within a step and gives its slot to the next request', async () => {
    const { engine: small } = testEngine({ 'scheduler.maxRunning': 1, 'scheduler.batchWindowMs': 0 });
    await small.start();
    try {
      const controller = new AbortController();
      const long = generateAll(
        small,
        { model: 'tiny-llama', prompt: 'Once', maxTokens: 240, ignoreEos: true, temperature: 0 },
        controller.signal,
        (e) => {
          if (e.type === 'token') controller.abort();
        },
      );
      const cut = await long;
      assert.equal(cut.finishes[0]!.finishReason, 'cancelled');
      assert.ok(
        cut.finishes[0]!.completionTokens < 240,
        `cancelled early (${cut.finishes[0]!.completionTokens} tokens)`,
      );
      await until(() => small.get('tiny-llama').running === 0, 2000, 'the slot to be freed');
      const next = await generateAll(small, { model: 'tiny-llama', prompt: 'Once', maxTokens: 5, ignoreEos: true });
      assert.equal(next.finishes[0]!.finishReason, 'length');
    } finally {
      await small.stop();
    }
  });

  it('fails the streams of a worker that dies with 503 and starts a new worker for the next request', async () => {
    const stream = await engine.generate({ model: 'tiny-llama', prompt: 'Once', maxTokens: 240, ignoreEos: true });
    let failure: unknown;
    try {
      for await (const e of stream) if (e.type === 'token') await engine.killWorker('tiny-llama');
    } catch (err) {
      failure = err;
    }
    assert.ok(failure instanceof NucleusError);
    assert.equal(failure.status, 503);
    assert.equal(failure.code, 'worker_exited');
    const after = await generateAll(engine, { model: 'tiny-llama', prompt: 'Once', maxTokens: 3, ignoreEos: true });
    assert.equal(after.tokens[0]!.length, 3);
  });

  it('embeds with the encoder in batches: each vector as if alone, unit length, mean or CLS pooling', async () => {
    const inputs = ['hello', 'a much longer sentence than the first', 'héllo wörld'];
    const batch = await engine.embed({ model: 'bert-tiny', input: inputs });
    assert.equal(batch.embeddings.length, 3);
    assert.equal(
      batch.promptTokens,
      inputs.reduce((n, s) => n + new TextEncoder().encode(s).length + 2, 0),
    );
    for (const [i, input] of inputs.entries()) {
      const [alone] = (await engine.embed({ model: 'bert-tiny', input })).embeddings;
      assert.equal(alone!.length, 32);
      alone!.forEach((v, d) => assert.ok(Math.abs(v - batch.embeddings[i]![d]!) < 1e-5, `input ${i} dim ${d}`));
      assert.ok(Math.abs(Math.hypot(...alone!) - 1) < 1e-5);
    }
    const cls = (await engine.embed({ model: 'bert-tiny', input: 'hello', pooling: 'cls' })).embeddings[0]!;
    assert.ok(
      cls.some((v, d) => Math.abs(v - batch.embeddings[0]![d]!) > 1e-3),
      'CLS pooling differs from mean pooling',
    );
    const raw = (await engine.embed({ model: 'bert-tiny', input: 'hello', normalize: false })).embeddings[0]!;
    assert.ok(Math.abs(Math.hypot(...raw) - 1) > 1e-3);
    const short = (await engine.embed({ model: 'bert-tiny', input: 'hello', dimensions: 8 })).embeddings[0]!;
    assert.equal(short.length, 8);
    await rejects(engine.embed({ model: 'bert-tiny', input: 'x'.repeat(200) }), 400, /maximum input length is 128/);
  });

  it('embeds with the decoder by last-token pooling, batched rows equal to single ones', async () => {
    const inputs = ['Once upon a time', 'Lily'];
    const batch = await engine.embed({ model: 'tiny-llama', input: inputs });
    for (const [i, input] of inputs.entries()) {
      const [alone] = (await engine.embed({ model: 'tiny-llama', input })).embeddings;
      assert.equal(alone!.length, 64);
      alone!.forEach((v, d) => assert.ok(Math.abs(v - batch.embeddings[i]![d]!) < 1e-4, `input ${i} dim ${d}`));
    }
  });

  it('embeds with its contrib graph (the built-in on the CPU) as the generic graph of the same weights does', async () => {
    const inputs = ['Once upon a time', 'Lily', 'She liked to play in the park with her friends.'];
    const contrib = await engine.embed({ model: 'tiny-llama', input: inputs });
    assert.equal(engine.get('tiny-llama').graphStyle, 'contrib');
    // The export folder the built-in is generated from, configured as a model: the same weights as a generic graph.
    const { engine: generic } = testEngine({ models: [{ name: 'tiny-llama', path: await ensureTinyLlama() }] });
    try {
      await generic.start();
      assert.equal(generic.get('tiny-llama').graphStyle, 'generic');
      const expected = await generic.embed({ model: 'tiny-llama', input: inputs });
      expected.embeddings.forEach((row, i) =>
        row.forEach((v, d) => assert.ok(Math.abs(v - contrib.embeddings[i]![d]!) < 1e-4, `input ${i} dim ${d}`)),
      );
    } finally {
      await generic.stop();
    }
  });
});
