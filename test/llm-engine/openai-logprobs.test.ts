import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import OpenAI from 'openai';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { ORACLE_DIR, requireOracle, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';
import { llamaCppRef } from '../llm-formats/oracle-refs.js';

// The oracle README's tolerance against llama.cpp for quant-zoo-F32.
const TOLERANCE = 0.05;
const messages = [{ role: 'user' as const, content: 'Tell me a story about Lily.' }];

describe('log-probs over the OpenAI API and the native routes, with the official openai client', function () {
  this.timeout(120_000);
  let kit: TestKernel | undefined;
  let client: OpenAI;

  before(async function () {
    requireStories(this);
    requireOracle(this);
    kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'api-openai')],
      config: {
        'scheduler.batchWindowMs': 5,
        models: [
          { name: 'stories', path: join(STORIES_DIR, 'stories260K.gguf') },
          { name: 'zoo', path: join(ORACLE_DIR, 'quant-zoo-F32.gguf') },
        ],
      },
    });
    client = new OpenAI({ baseURL: `${kit.url}/v1`, apiKey: 'dummy-key', maxRetries: 0 });
  });
  after(async () => {
    await kit?.stop();
  });

  it('/v1/completions logprobs: 5 gives llama.cpp n_probs top-5 at every greedy step (legacy shape)', async () => {
    const ref = llamaCppRef('quant-zoo-F32').prompts.find((p) => p.name === 'short')!;
    const res = await client.completions.create({
      model: 'zoo',
      prompt: ref.prompt_ids,
      max_tokens: ref.generated_ids.length,
      temperature: 0,
      logprobs: 5,
      ignore_eos: true,
    } as OpenAI.CompletionCreateParamsNonStreaming);
    const lp = res.choices[0]!.logprobs!;
    assert.equal(lp.tokens!.length, ref.steps.length);
    // Tokens are pieces with their leading space, which the text drops at its very start.
    assert.equal(lp.tokens!.join('').trimStart(), res.choices[0]!.text.trimStart());
    ref.steps.forEach((step, k) => {
      assert.ok(Math.abs(lp.token_logprobs![k]! - step.top5[0]![1]) <= TOLERANCE, `step ${k}`);
      const top = lp.top_logprobs![k]!;
      assert.equal(Object.keys(top).length <= 5, true);
      // The best one by a clear margin is the same token, with the same log-prob.
      const best = Object.entries(top).sort((a, b) => b[1] - a[1])[0]!;
      assert.ok(Math.abs(best[1] - step.top5[0]![1]) <= TOLERANCE);
      assert.equal(best[0], lp.tokens![k]);
    });
    for (let k = 1; k < lp.text_offset!.length; k++)
      assert.equal(lp.text_offset![k], lp.text_offset![k - 1]! + lp.tokens![k - 1]!.length);
  });

  it('chat logprobs + top_logprobs: choices[].logprobs.content in OpenAI shape, streamed deltas carry the same', async () => {
    const request = {
      model: 'stories',
      messages,
      max_tokens: 12,
      temperature: 0,
      ignore_eos: true,
      logprobs: true,
      top_logprobs: 3,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming;
    const whole = await client.chat.completions.create(request);
    const content = whole.choices[0]!.logprobs!.content!;
    assert.equal(content.length, whole.usage!.completion_tokens);
    assert.equal(
      content
        .map((c) => c.token)
        .join('')
        .trim(),
      whole.choices[0]!.message.content!.trim(),
    );
    for (const c of content) {
      assert.ok(c.logprob <= 0);
      assert.deepEqual(c.bytes, [...Buffer.from(c.token)]);
      assert.equal(c.top_logprobs.length, 3);
      // Greedy: the chosen token is the most likely one.
      assert.equal(c.top_logprobs[0]!.token, c.token);
      assert.equal(c.top_logprobs[0]!.logprob, c.logprob);
      assert.ok(c.top_logprobs[0]!.logprob >= c.top_logprobs[1]!.logprob);
    }
    const streamed: OpenAI.ChatCompletionTokenLogprob[] = [];
    let text = '';
    for await (const chunk of await client.chat.completions.create({ ...request, stream: true })) {
      const choice = chunk.choices[0];
      text += choice?.delta.content ?? '';
      streamed.push(...(choice?.logprobs?.content ?? []));
    }
    assert.equal(text, whole.choices[0]!.message.content);
    assert.deepEqual(streamed, content);
    const plain = await client.chat.completions.create({ model: 'stories', messages, max_tokens: 3 });
    assert.equal(plain.choices[0]!.logprobs, null);
  });

  it('native /generate n_probs gives each token its log-prob and alternatives, whole and streamed', async () => {
    const body = { model: 'stories', prompt: 'Once upon a time', max_tokens: 6, temperature: 0, n_probs: 2 };
    const res = await kit!.request('/generate', { body });
    assert.equal(res.status, 200);
    const choice = (
      res.body as { choices: { token_ids: number[]; logprobs: { id: number; top_logprobs: unknown[] }[] }[] }
    ).choices[0]!;
    assert.deepEqual(
      choice.logprobs.map((l) => l.id),
      choice.token_ids,
    );
    for (const l of choice.logprobs) assert.equal(l.top_logprobs.length, 2);
    const sse = await fetch(new URL('/generate', kit!.url), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, stream: true }),
    });
    const events = (await sse.text())
      .split('\n')
      .filter((l) => l.startsWith('data: ') && l.includes('"token":{'))
      .map((l) => JSON.parse(l.slice(6)) as { logprobs: unknown });
    assert.deepEqual(
      events.map((e) => e.logprobs),
      choice.logprobs,
    );
  });

  it('refuses top_logprobs without logprobs, and past 20, with a 400 naming the field', async () => {
    await assert.rejects(
      client.chat.completions.create({ model: 'stories', messages, top_logprobs: 2 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && (err.param as string) === 'top_logprobs',
    );
    await assert.rejects(
      client.chat.completions.create({ model: 'stories', messages, logprobs: true, top_logprobs: 21 }),
      (err: unknown) => err instanceof OpenAI.BadRequestError && /top_logprobs/.test(err.message),
    );
  });
});
