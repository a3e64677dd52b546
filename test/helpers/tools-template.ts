import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT } from './paths.js';

/** qwen2-tiny (random weights, the Qwen2 vocabulary) from the shared models; tests skip where it is absent. */
export const QWEN2 = join(REPO_ROOT, '..', 'shared', 'models', 'llm-oracle', 'qwen2-tiny-F16.gguf');

/** A Qwen2.5-style chat template that renders tools, tool calls and tool results (Hermes `<tool_call>` tags). */
export const TOOLS_TEMPLATE =
  "{%- if tools %}{{ '<|im_start|>system\\nYou may call functions. Signatures:\\n<tools>' }}" +
  "{%- for tool in tools %}{{ '\\n' + (tool | tojson) }}{%- endfor %}" +
  '{{ \'\\n</tools>\\nReturn each call as <tool_call>{"name": ..., "arguments": ...}</tool_call><|im_end|>\\n\' }}{%- endif %}' +
  '{%- for message in messages %}' +
  "{%- if message.role == 'tool' %}{{ '<|im_start|>user\\n<tool_response>\\n' + message.content + '\\n</tool_response><|im_end|>\\n' }}" +
  "{%- else %}{{ '<|im_start|>' + message.role + '\\n' + (message.content or '') }}" +
  '{%- if message.tool_calls %}{%- for call in message.tool_calls %}' +
  '{{ \'<tool_call>\\n{"name": "\' + call.function.name + \'", "arguments": \' + (call.function.arguments | tojson) + \'}\\n</tool_call>\' }}' +
  "{%- endfor %}{%- endif %}{{ '<|im_end|>\\n' }}{%- endif %}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}";

/** Two functions for round trips: one with a bounded string and an enum, one with an integer. */
export const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'The weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['c', 'f'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};
export const TIME_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_time',
    parameters: { type: 'object', properties: { zone: { type: 'integer' } }, required: ['zone'] },
  },
};

/** A kernel serving qwen2-tiny as `qwen` with {@link TOOLS_TEMPLATE}, behind the API plugin at `plugin`. */
export function startToolsKernel(plugin: string): Promise<TestKernel> {
  return startTestKernel({
    plugins: [plugin],
    builtinModels: false,
    config: { models: [{ name: 'qwen', path: QWEN2, chatTemplate: TOOLS_TEMPLATE }] },
  });
}
