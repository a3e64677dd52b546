import { badRequest, type ToolDefinition } from '@nucleus/sdk';
import {
  chatOutputOf,
  ToolCallStream,
  toolChoiceOf,
  type ChatOutput,
  type ParsedToolCall,
  type ToolChoice,
  type ToolChoiceField,
} from '@nucleus/sdk/llm';

/** The fields of an Ollama request that shape its answer (`tools` and `tool_choice` on `/api/chat` only). */
export interface OllamaOutputFields {
  format?: string | Record<string, unknown>;
  tools?: { type?: string; function: ToolDefinition['function'] }[];
  /** Nucleus's extension: Ollama lets the model choose, which is `auto`. */
  tool_choice?: ToolChoiceField;
}

/** A tool call as Ollama sends it: the arguments as an object. */
export interface OllamaToolCall {
  function: { name: string; arguments: unknown };
}

/**
 * What an Ollama request's answer must be: `format` `"json"` (a JSON object) or a JSON Schema, decoded under
 * constraint; `tools` rendered by the chat template, the model calling them as it chooses. A format leaves no room
 * for a call, so the two together are refused rather than one silently winning.
 */
export function ollamaOutputOf(body: OllamaOutputFields): ChatOutput {
  const tools = body.tools?.map((t): ToolDefinition => ({ type: 'function', function: t.function }));
  const offered = tools !== undefined && tools.length > 0;
  const choice = toolChoiceOf(body.tool_choice, offered);
  const schema = formatSchema(body.format);
  if (schema && offered && choice !== 'none')
    throw badRequest(
      'conflicting_fields',
      'format leaves no room for tool calls: send tools without a format, or the format without tools',
      'format',
    );
  return chatOutputOf({
    ...(offered && { tools }),
    choice,
    ...(schema && { format: { schema, where: 'format', param: 'format' } }),
  });
}

// Ollama's `format`: "" is none, "json" any JSON object (as Ollama's JSON grammar), an object a JSON Schema.
function formatSchema(format: OllamaOutputFields['format']): Record<string, unknown> | undefined {
  if (format === undefined || format === '') return undefined;
  if (format === 'json') return { type: 'object' };
  if (typeof format === 'string')
    throw badRequest('invalid_format', `invalid format "${format}": send "json" or a JSON Schema object`, 'format');
  return format;
}

/** A parsed call in Ollama's shape; arguments that are not JSON stay the text they are. */
export function ollamaToolCall(call: ParsedToolCall): OllamaToolCall {
  let args: unknown = call.arguments;
  try {
    args = JSON.parse(call.arguments);
  } catch {
    // Left as text: the client sees what the model wrote.
  }
  return { function: { name: call.name, arguments: args } };
}

/** One line's worth of a streamed chat answer: text, or tool calls. */
export type ChatPiece = { content: string } | { calls: OllamaToolCall[] };

/**
 * A streamed answer with tools, as Ollama streams it: text as it comes, each tool call whole once it is complete (a
 * free call when its `<tool_call>` block closes, a forced one when the next begins or the answer ends).
 */
export class ToolCallLines {
  readonly #stream: ToolCallStream;
  #pending: ParsedToolCall | undefined;

  constructor(private readonly choice: ToolChoice) {
    this.#stream = new ToolCallStream(choice);
  }

  /** The pieces `text` completes. */
  push(text: string): ChatPiece[] {
    return text ? this.#pieces(this.#stream.push(text), false) : [];
  }

  /** What is left at the end of the answer. */
  end(): ChatPiece[] {
    return this.#pieces(this.#stream.end(), true);
  }

  #pieces(deltas: ReturnType<ToolCallStream['push']>, final: boolean): ChatPiece[] {
    const out: ChatPiece[] = [];
    const flush = () => {
      if (this.#pending) out.push({ calls: [ollamaToolCall(this.#pending)] });
      this.#pending = undefined;
    };
    for (const d of deltas) {
      if (d.type === 'content') {
        if (d.text) out.push({ content: d.text });
        continue;
      }
      if (d.name !== undefined) {
        flush();
        this.#pending = { name: d.name, arguments: d.arguments };
      } else if (this.#pending) this.#pending.arguments += d.arguments;
      if (this.choice === 'auto') flush();
    }
    if (final) flush();
    return out;
  }
}
