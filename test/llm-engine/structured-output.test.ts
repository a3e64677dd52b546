import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import type { ChatCompletionChunk, ChatCompletionTool } from 'openai/resources/chat/completions';
import { SeededRandom } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { QWEN2, startToolsKernel, TIME_TOOL, WEATHER_TOOL } from '../helpers/tools-template.js';

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-openai');
const MODEL = 'tiny-llama';
const messages = [{ role: 'user' as const, content: 'Describe Lily as JSON.' }];
const ajv = new Ajv({ strict: false });

const weather: ChatCompletionTool = WEATHER_TOOL;
const time: ChatCompletionTool = TIME_TOOL;

/** A small random schema: an object of scalars, enums, short arrays and one level of nested objects. */
function randomSchema(rng: SeededRandom, depth = 0): Record<string, unknown> {
  const pick = <T>(xs: T[]): T => xs[Math.floor(rng.next() * xs.length)]!;
  const scalar = (): Record<string, unknown> =>
    pick<() => Record<string, unknown>>([
      () => ({ type: 'string', maxLength: 1 + Math.floor(rng.next() * 6) }),
      () => ({ type: 'integer' }),
      () => ({ type: 'number' }),
      () => ({ type: 'boolean' }),
      () => ({ type: 'null' }),
      () => ({ enum: ['red', 'green', 7, null] }),
      () => ({ const: 'fixed' }),
      () => ({ type: ['string', 'null'], maxLength: 4 }),
      () => ({ anyOf: [{ type: 'integer' }, { type: 'boolean' }] }),
    ])();
  const value = (): Record<string, unknown> => {
    const r = rng.next();
    if (depth === 0 && r < 0.15) return randomSchema(rng, depth + 1);
    if (r < 0.3) return { type: 'array', items: scalar(), minItems: Math.floor(rng.next() * 2), maxItems: 2 };
    return scalar();
  };
  const keys = Array.from({ length: 1 + Math.floor(rng.next() * (depth === 0 ? 4 : 2)) }, (_, i) => `k${i}`);
  const properties = Object.fromEntries(keys.map((k) => [k, value()]));
  const required = keys.filter(() => rng.next() < 0.6);
  return { type: 'object', properties, required, additionalProperties: false };
}

describe('structured output and tool calling on /v1/chat/completions (official openai client)', () => {
  let kit: TestKernel;
  let client: OpenAI;

  before(async () => {
    kit = await startTestKernel({ plugins: [API_PLUGIN], config: { 'scheduler.batchWindowMs': 5 } });
    client = new OpenAI({ baseURL: `${kit.url}/v1`, apiKey: 'dummy-key', maxRetries: 0 });
  });
  after(async () => {
    await kit?.stop();
  });

  it('json_object: the answer parses as a JSON object, streamed or not', async () => {
    const request = {
      model: MODEL,
      messages,
      seed: 3,
      temperature: 1,
      response_format: { type: 'json_object' as const },
    };
    const whole = await client.chat.completions.create(request);
    assert.equal(whole.choices[0]!.finish_reason, 'stop');
    const value = JSON.parse(whole.choices[0]!.message.content!) as unknown;
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value));
    const stream = await client.chat.completions.create({ ...request, stream: true });
    let text = '';
    let finish: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(finish, 'stop');
    assert.equal(text, whole.choices[0]!.message.content, 'same seed, same output streamed');
  });

  it('json_schema: the answer validates against the schema, streamed or not, with several choices batched', async () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 10 },
        age: { type: 'integer' },
        tags: { type: 'array', items: { enum: ['kind', 'brave'] }, minItems: 1, maxItems: 2 },
        pet: {
          anyOf: [{ type: 'null' }, { type: 'object', properties: { dog: { type: 'boolean' } }, required: ['dog'] }],
        },
      },
      required: ['name', 'age', 'tags', 'pet'],
      additionalProperties: false,
    };
    const validate = ajv.compile(schema);
    const request = {
      model: MODEL,
      messages,
      n: 3,
      seed: 11,
      temperature: 1.2,
      response_format: { type: 'json_schema' as const, json_schema: { name: 'person', schema, strict: true } },
    };
    const whole = await client.chat.completions.create(request);
    assert.equal(whole.choices.length, 3);
    for (const c of whole.choices) {
      assert.equal(c.finish_reason, 'stop');
      assert.ok(validate(JSON.parse(c.message.content!)), `${c.message.content} ${ajv.errorsText(validate.errors)}`);
    }
    const stream = await client.chat.completions.create({ ...request, stream: true });
    const texts = ['', '', ''];
    for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? '';
    for (const t of texts) assert.ok(validate(JSON.parse(t)), t);
  });

  it('50 random schemas: every output validates (seeded generator, sampled at temperature 1, 10 at a time)', async function () {
    this.timeout(600_000);
    const rng = new SeededRandom(2024);
    const schemas = Array.from({ length: 50 }, () => randomSchema(rng));
    const failures: string[] = [];
    for (let i = 0; i < schemas.length; i += 10) {
      await Promise.all(
        schemas.slice(i, i + 10).map(async (schema, j) => {
          const res = await client.chat.completions.create({
            model: MODEL,
            messages,
            seed: i + j,
            temperature: 1,
            response_format: { type: 'json_schema', json_schema: { name: `s${i + j}`, schema, strict: true } },
          });
          const text = res.choices[0]!.message.content!;
          const validate = ajv.compile(schema);
          let ok = res.choices[0]!.finish_reason === 'stop';
          try {
            ok &&= validate(JSON.parse(text));
          } catch {
            ok = false;
          }
          if (!ok) failures.push(`${JSON.stringify(schema)} → ${text} (${res.choices[0]!.finish_reason})`);
        }),
      );
    }
    assert.deepEqual(failures, []);
  });

  it('answers 400 with a clear JSON error for bad schemas and tools the template cannot render', async () => {
    const bad = async (body: Record<string, unknown>, code: string, param: string, message: RegExp) => {
      const res = await kit.request('/v1/chat/completions', { body: { model: MODEL, messages, ...body } });
      assert.equal(res.status, 400, JSON.stringify(res.body));
      const error = (res.body as { error: { code: string; type: string; param?: string; message: string } }).error;
      assert.equal(error.type, 'invalid_request_error');
      assert.equal(error.code, code);
      assert.equal(error.param, param);
      assert.match(error.message, message);
    };
    const format = (schema: unknown) => ({
      response_format: { type: 'json_schema', json_schema: { name: 'x', schema } },
    });
    await bad(
      format({ type: 'object', properties: 5 }),
      'invalid_schema',
      'response_format',
      /not a valid JSON Schema/,
    );
    await bad(format({ type: 'string', pattern: '^a+$' }), 'unsupported_schema', 'response_format', /'pattern' at #/);
    await bad(
      format({ type: 'object', $defs: { a: { type: 'string' } }, properties: { a: { $ref: '#/$defs/a' } } }),
      'unsupported_schema',
      'response_format',
      /'\$ref' at #\/properties\/a/,
    );
    await bad({ tools: [weather] }, 'tools_unsupported', 'tools', /chat template cannot render tools/);
    await bad({ tools: [{ type: 'function' }] }, 'missing_field', 'function', /'function' is a required property/);
    await bad({ tools: 'get_weather' }, 'invalid_field', 'tools', /'tools' must be/);
    await bad({ tool_choice: 'required' }, 'missing_tools', 'tool_choice', /needs a non-empty tools list/);
    // tool_choice none works on any template: the tools are not shown.
    const none = await client.chat.completions.create({
      model: MODEL,
      messages,
      max_tokens: 4,
      tools: [weather],
      tool_choice: 'none',
    });
    assert.equal(none.choices[0]!.message.tool_calls, undefined);
  });

  describe('on a model whose chat template renders tools (qwen2-tiny with a Qwen2.5-style template)', () => {
    let qwen: TestKernel;
    let qc: OpenAI;

    before(async function () {
      if (!existsSync(QWEN2)) this.skip();
      this.timeout(600_000);
      qwen = await startToolsKernel(API_PLUGIN);
      qc = new OpenAI({ baseURL: `${qwen.url}/v1`, apiKey: 'dummy-key', maxRetries: 0 });
    });
    after(async () => {
      await qwen?.stop();
    });

    it('round trip: a forced call, its result sent back as a tool message, then a final answer', async function () {
      this.timeout(600_000);
      const ask = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];
      const first = await qc.chat.completions.create({
        model: 'qwen',
        messages: ask,
        tools: [weather, time],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        seed: 1,
      });
      const choice = first.choices[0]!;
      assert.equal(choice.finish_reason, 'tool_calls');
      const call = choice.message.tool_calls![0]!;
      assert.match(call.id, /^call_/);
      assert.equal(call.type, 'function');
      assert.equal(call.function.name, 'get_weather');
      const validate = ajv.compile(weather.function.parameters!);
      assert.ok(validate(JSON.parse(call.function.arguments)), call.function.arguments);

      const final = await qc.chat.completions.create({
        model: 'qwen',
        messages: [
          ...ask,
          { role: 'assistant', content: null, tool_calls: [call] },
          { role: 'tool', tool_call_id: call.id, content: '{"temperature": 21}' },
        ],
        tools: [weather, time],
        max_tokens: 8,
        seed: 2,
      });
      assert.equal(typeof final.choices[0]!.message.content, 'string');
      assert.equal(final.usage!.completion_tokens <= 8, true);
    });

    it('tool_choice required streams tool_calls deltas as OpenAI does: id and name first, arguments in pieces', async function () {
      this.timeout(600_000);
      const stream = await qc.chat.completions.create({
        model: 'qwen',
        messages: [{ role: 'user', content: 'Weather or time?' }],
        tools: [weather, time],
        tool_choice: 'required',
        temperature: 1,
        seed: 5,
        stream: true,
      });
      const calls: { id?: string; name?: string; arguments: string; pieces: number }[] = [];
      let finish: string | null = null;
      const chunks: ChatCompletionChunk[] = [];
      for await (const chunk of stream) {
        chunks.push(chunk);
        const c = chunk.choices[0];
        if (!c) continue;
        finish = c.finish_reason ?? finish;
        for (const d of c.delta.tool_calls ?? []) {
          const acc = (calls[d.index] ??= { arguments: '', pieces: 0 });
          if (d.id !== undefined) {
            assert.equal(acc.id, undefined, 'the id comes once, in the first delta');
            acc.id = d.id;
            acc.name = d.function!.name!;
          } else assert.equal(d.function?.name, undefined);
          acc.arguments += d.function?.arguments ?? '';
          acc.pieces++;
        }
      }
      assert.equal(finish, 'tool_calls');
      assert.ok(calls.length >= 1);
      for (const call of calls) {
        assert.match(call.id!, /^call_/);
        const tool = [weather, time].find((t) => t.function.name === call.name)!;
        assert.ok(ajv.compile(tool.function.parameters!)(JSON.parse(call.arguments)), call.arguments);
      }
      assert.ok(
        calls.some((c) => c.pieces > 2),
        'arguments arrive in several pieces',
      );
    });
  });
});
