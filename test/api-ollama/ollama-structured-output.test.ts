import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { Ollama, type ChatRequest, type Message, type Tool } from 'ollama';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';
import { QWEN2, startToolsKernel, TIME_TOOL, WEATHER_TOOL } from '../helpers/tools-template.js';

// `format` and `tools` on the Ollama API through the official `ollama` client, unmodified: constrained decoding on
// the built-in tiny Llama, and a tool-call round trip on qwen2-tiny served with a chat template that renders tools.

const API_PLUGIN = join(REPO_ROOT, 'plugins', 'api-ollama');
const MODEL = 'tiny-llama';
const ajv = new Ajv({ strict: false });

const weather = WEATHER_TOOL as Tool;
const time = TIME_TOOL as Tool;

/** `tool_choice` is Nucleus's extension to Ollama's request (its models always choose freely): the client sends it on. */
type ForcedChat = ChatRequest & { tool_choice?: unknown };

describe('api-ollama: format and tools through the official ollama client', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let ollama: Ollama;

  before(async () => {
    kit = await startTestKernel({ plugins: [API_PLUGIN], config: { 'scheduler.batchWindowMs': 5 } });
    ollama = new Ollama({ host: kit.url });
  });
  after(async () => {
    await kit?.stop();
  });

  it('format "json": /api/generate answers a JSON object, the same whole and streamed', async () => {
    const request = { model: MODEL, prompt: 'Describe Lily.', format: 'json', options: { seed: 4, temperature: 1 } };
    const whole = await ollama.generate({ ...request, stream: false });
    assert.equal(whole.done_reason, 'stop');
    const value = JSON.parse(whole.response ?? '') as unknown;
    assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), whole.response);
    let text = '';
    for await (const part of await ollama.generate({ ...request, stream: true })) text += part.response;
    assert.equal(text, whole.response);
  });

  it('format with a JSON schema: /api/chat answers validate, whole and streamed', async () => {
    const schema = {
      type: 'object',
      properties: {
        name: { type: 'string', maxLength: 10 },
        age: { type: 'integer' },
        tags: { type: 'array', items: { enum: ['kind', 'brave'] }, minItems: 1, maxItems: 2 },
      },
      required: ['name', 'age', 'tags'],
      additionalProperties: false,
    };
    const validate = ajv.compile(schema);
    const messages = [{ role: 'user', content: 'Describe Lily as JSON.' }];
    for (const seed of [1, 2, 3]) {
      const whole = await ollama.chat({ model: MODEL, messages, format: schema, options: { seed, temperature: 1.2 } });
      assert.ok(
        validate(JSON.parse(whole.message.content)),
        `${whole.message.content} ${ajv.errorsText(validate.errors)}`,
      );
      assert.equal(whole.message.tool_calls, undefined);
      let text = '';
      const parts = await ollama.chat({
        model: MODEL,
        messages,
        format: schema,
        options: { seed, temperature: 1.2 },
        stream: true,
      });
      for await (const part of parts) text += part.message.content;
      assert.equal(text, whole.message.content);
    }
  });

  it('answers 400 {"error": "..."} for bad schemas, a bad format, and tools the template cannot render', async () => {
    const messages = [{ role: 'user', content: 'x' }];
    const cases: [Partial<ForcedChat>, RegExp][] = [
      [{ format: { type: 'object', properties: 5 } }, /format is not a valid JSON Schema/],
      [{ format: { type: 'string', pattern: '^a+$' } }, /schema keyword 'pattern' at # is not supported/],
      [{ format: 'xml' }, /invalid format "xml": send "json" or a JSON Schema object/],
      [{ tools: [weather] }, /chat template cannot render tools/],
      [{ tools: [weather], format: 'json' }, /format leaves no room for tool calls/],
      [{ tools: [{ type: 'function', function: {} }] as Tool[] }, /tools\.0\.function\.name is required/],
      [{ tools: [weather], tool_choice: { function: { name: 'nope' } } }, /names the function 'nope'/],
      [
        {
          tools: [
            { ...weather, function: { ...weather.function, parameters: { type: 'object', minProperties: 1 } } } as Tool,
          ],
        },
        /'minProperties' at # is not supported/,
      ],
    ];
    for (const [extra, message] of cases) {
      await assert.rejects(
        ollama.chat({ model: MODEL, messages, ...extra } as ChatRequest & { stream: false }),
        (err: Error & { status_code?: number }) => {
          assert.equal(err.status_code, 400, `${JSON.stringify(extra)}: ${err.message}`);
          assert.match(err.message, message);
          return true;
        },
      );
    }
    await assert.rejects(ollama.generate({ model: MODEL, prompt: 'x', tools: [weather] } as never), (err: Error) =>
      /tools are taken on \/api\/chat/.test(err.message),
    );
  });

  describe('on a model whose chat template renders tools (qwen2-tiny)', () => {
    let qwen: TestKernel;
    let qc: Ollama;

    before(async function () {
      if (!existsSync(QWEN2)) this.skip();
      this.timeout(600_000);
      qwen = await startToolsKernel(API_PLUGIN);
      qc = new Ollama({ host: qwen.url });
    });
    after(async () => {
      await qwen?.stop();
    });

    it('round trip: a call, its result sent back as a tool message, then an answer', async function () {
      this.timeout(600_000);
      const ask: Message[] = [{ role: 'user', content: 'What is the weather in Paris?' }];
      const first = await qc.chat({
        model: 'qwen',
        messages: ask,
        tools: [weather, time],
        tool_choice: { type: 'function', function: { name: 'get_weather' } },
        options: { seed: 1 },
      } as ForcedChat & { stream: false });
      assert.equal(first.done, true);
      assert.equal(first.message.role, 'assistant');
      assert.equal(first.message.content, '');
      const calls = first.message.tool_calls ?? [];
      assert.equal(calls.length, 1);
      assert.equal(calls[0]!.function.name, 'get_weather');
      const args = calls[0]!.function.arguments;
      assert.equal(typeof args, 'object', 'arguments come as an object, as Ollama sends them');
      assert.ok(ajv.compile(weather.function.parameters!)(args), JSON.stringify(args));

      const final = await qc.chat({
        model: 'qwen',
        messages: [
          ...ask,
          { role: 'assistant', content: '', tool_calls: calls },
          { role: 'tool', content: '{"temperature": 21}', tool_name: 'get_weather' },
        ],
        tools: [weather, time],
        options: { seed: 2, num_predict: 8 },
      });
      assert.equal(final.done, true);
      assert.equal(typeof final.message.content, 'string');
      assert.ok(final.eval_count <= 8);
      // The tool turn reached the prompt: the second prompt is longer than the first by the call and its result.
      assert.ok(final.prompt_eval_count > first.prompt_eval_count, `${final.prompt_eval_count}`);
    });

    it('streams each call whole, as Ollama does, when the model must call a tool', async function () {
      this.timeout(600_000);
      const parts = await qc.chat({
        model: 'qwen',
        messages: [{ role: 'user', content: 'Weather or time?' }],
        tools: [weather, time],
        tool_choice: 'required',
        options: { seed: 5, temperature: 1 },
        stream: true,
      } as ForcedChat & { stream: true });
      const calls: NonNullable<Message['tool_calls']> = [];
      let last: { done: boolean; done_reason: string } | undefined;
      for await (const part of parts) {
        for (const call of part.message.tool_calls ?? []) calls.push(call);
        if (part.message.tool_calls) assert.equal(part.message.content, '');
        last = part;
      }
      assert.equal(last?.done, true);
      assert.ok(calls.length >= 1);
      for (const call of calls) {
        const tool = [weather, time].find((t) => t.function.name === call.function.name);
        assert.ok(tool, call.function.name);
        assert.ok(ajv.compile(tool.function.parameters!)(call.function.arguments), JSON.stringify(call));
      }
    });
  });
});
