import { badRequest } from '../errors.js';
import type { ToolCall, ToolDefinition } from '../generation.js';

/** How a request lets the model call tools: freely (`auto`), never, at least once, or one function by name. */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

/** Hermes-style tags (Qwen2.5, Hermes, many fine-tunes): a call is `<tool_call>{"name": …, "arguments": …}</tool_call>`. */
const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/**
 * The JSON Schema a forced tool call is decoded under: a named function's `parameters` (the output is its arguments),
 * or for `required` a non-empty list of `{"name", "arguments"}` objects, one branch per tool, name first so a stream
 * can announce each call before its arguments. Undefined when the model calls tools freely (or not at all).
 */
export function toolCallSchema(
  tools: readonly ToolDefinition[],
  choice: ToolChoice,
): Record<string, unknown> | undefined {
  if (choice === 'auto' || choice === 'none') return undefined;
  if (typeof choice === 'object') {
    const tool = tools.find((t) => t.function.name === choice.name);
    if (!tool)
      throw badRequest(
        'invalid_tool_choice',
        `tool_choice names the function '${choice.name}', which is not in tools (${tools.map((t) => t.function.name).join(', ')})`,
        'tool_choice',
      );
    return parametersOf(tool);
  }
  return {
    type: 'array',
    minItems: 1,
    maxItems: 4,
    items: {
      anyOf: tools.map((t) => ({
        type: 'object',
        properties: { name: { const: t.function.name }, arguments: parametersOf(t) },
        required: ['name', 'arguments'],
        additionalProperties: false,
      })),
    },
  };
}

// A function without parameters takes an empty object.
function parametersOf(tool: ToolDefinition): Record<string, unknown> {
  return tool.function.parameters ?? { type: 'object', properties: {}, additionalProperties: false };
}

/** Whether a Jinja chat template renders a `tools` list at all (one that never reads it would drop them silently). */
export function templateRendersTools(template: string | undefined): boolean {
  return template !== undefined && /\btools\b/.test(template);
}

/** A tool call as generated: the function's name and its arguments as JSON text. */
export interface ParsedToolCall {
  name: string;
  arguments: string;
}

/** What a model said: its text with the tool calls taken out, and the calls. */
export interface ParsedAnswer {
  content: string;
  calls: ParsedToolCall[];
}

/**
 * The tool calls in a whole answer generated under `choice`: the forced forms ({@link toolCallSchema}) are JSON;
 * `auto` looks for Hermes-style `<tool_call>` blocks, and leaves a block that is not a call (no JSON, no name) as text.
 */
export function parseToolCalls(text: string, choice: ToolChoice): ParsedAnswer {
  if (typeof choice === 'object') return { content: '', calls: [{ name: choice.name, arguments: text }] };
  if (choice === 'required') {
    const list = JSON.parse(text) as { name: string; arguments: unknown }[];
    return { content: '', calls: list.map((c) => ({ name: c.name, arguments: JSON.stringify(c.arguments) })) };
  }
  if (choice === 'none') return { content: text, calls: [] };
  const calls: ParsedToolCall[] = [];
  let content = '';
  let at = 0;
  for (;;) {
    const open = text.indexOf(OPEN, at);
    if (open < 0) break;
    const close = text.indexOf(CLOSE, open + OPEN.length);
    const body = text.slice(open + OPEN.length, close < 0 ? undefined : close);
    const call = hermesCall(body);
    content += text.slice(at, open);
    if (call) calls.push(call);
    else content += text.slice(open, close < 0 ? undefined : close + CLOSE.length);
    at = close < 0 ? text.length : close + CLOSE.length;
  }
  content += text.slice(at);
  return { content: calls.length > 0 ? content.trim() : content, calls };
}

function hermesCall(body: string): ParsedToolCall | undefined {
  try {
    const v = JSON.parse(body) as { name?: unknown; arguments?: unknown; parameters?: unknown };
    if (typeof v?.name !== 'string') return undefined;
    const args = v.arguments ?? v.parameters ?? {};
    return { name: v.name, arguments: typeof args === 'string' ? args : JSON.stringify(args) };
  } catch {
    return undefined;
  }
}

/** One piece of a streamed answer: text, or part of call `index` (its name comes with its first piece). */
export type ToolStreamDelta =
  | { type: 'content'; text: string }
  | { type: 'call'; index: number; name?: string; arguments: string };

/**
 * Splits a streamed answer into text and tool-call pieces as it comes, the way OpenAI streams `tool_calls`: a call's
 * name in its first delta, its arguments after in pieces. A named function streams its arguments as they are
 * generated; `required` streams each call's arguments once its name is known; `auto` holds back what may be the start
 * of a `<tool_call>` tag and sends a call when its block is complete.
 */
export class ToolCallStream {
  #buffer = '';
  #calls = 0;
  /** `required`: where the scanner is in `[{"name":"…","arguments":…},…]`. */
  #inArguments = false;
  #depth = 0;
  #inString = false;
  #escaped = false;

  constructor(private readonly choice: ToolChoice) {}

  /** The deltas `text` completes. */
  push(text: string): ToolStreamDelta[] {
    const choice = this.choice;
    if (choice === 'none') return text ? [{ type: 'content', text }] : [];
    if (typeof choice === 'object') {
      const first = this.#calls === 0;
      this.#calls = 1;
      return first || text ? [{ type: 'call', index: 0, ...(first && { name: choice.name }), arguments: text }] : [];
    }
    this.#buffer += text;
    return choice === 'required' ? this.#scanRequired() : this.#scanAuto(false);
  }

  /** What is left at the end of the answer. */
  end(): ToolStreamDelta[] {
    if (this.choice === 'auto') return this.#scanAuto(true);
    return [];
  }

  #scanAuto(final: boolean): ToolStreamDelta[] {
    const out: ToolStreamDelta[] = [];
    for (;;) {
      const open = this.#buffer.indexOf(OPEN);
      if (open < 0) {
        // Hold back a tail that could be the start of the tag.
        let keep = final ? 0 : Math.min(OPEN.length - 1, this.#buffer.length);
        while (keep > 0 && !OPEN.startsWith(this.#buffer.slice(-keep))) keep--;
        const text = this.#buffer.slice(0, this.#buffer.length - keep);
        if (text) out.push({ type: 'content', text });
        this.#buffer = this.#buffer.slice(this.#buffer.length - keep);
        return out;
      }
      if (open > 0) out.push({ type: 'content', text: this.#buffer.slice(0, open) });
      this.#buffer = this.#buffer.slice(open);
      const close = this.#buffer.indexOf(CLOSE);
      if (close < 0 && !final) return out;
      const block = close < 0 ? this.#buffer : this.#buffer.slice(0, close + CLOSE.length);
      const call = hermesCall(block.slice(OPEN.length, close < 0 ? undefined : close));
      if (call) out.push({ type: 'call', index: this.#calls++, name: call.name, arguments: call.arguments });
      else out.push({ type: 'content', text: block });
      this.#buffer = this.#buffer.slice(block.length);
      if (close < 0) return out;
    }
  }

  // The constrained form is compact JSON with `name` first, so a call's head is recognised by its exact spelling.
  #scanRequired(): ToolStreamDelta[] {
    const out: ToolStreamDelta[] = [];
    let pending = '';
    const flush = () => {
      if (pending) out.push({ type: 'call', index: this.#calls - 1, arguments: pending });
      pending = '';
    };
    while (this.#buffer.length > 0) {
      if (!this.#inArguments) {
        const head = /^[[,]?\{"name":("(?:[^"\\]|\\.)*"),"arguments":/.exec(this.#buffer);
        if (!head) {
          // `]`, `}` between calls, or a head not complete yet.
          if (/^[\]}]/.test(this.#buffer)) {
            this.#buffer = this.#buffer.slice(1);
            continue;
          }
          break;
        }
        this.#buffer = this.#buffer.slice(head[0].length);
        out.push({ type: 'call', index: this.#calls++, name: JSON.parse(head[1]!) as string, arguments: '' });
        this.#inArguments = true;
        this.#depth = 0;
        continue;
      }
      const c = this.#buffer[0]!;
      // The arguments value ends at the `}` that closes the call object, at depth 0 outside strings.
      if (!this.#inString && this.#depth === 0 && c === '}') {
        flush();
        this.#inArguments = false;
        continue;
      }
      this.#buffer = this.#buffer.slice(1);
      pending += c;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (c === '\\') this.#escaped = true;
        else if (c === '"') this.#inString = false;
      } else if (c === '"') this.#inString = true;
      else if (c === '{' || c === '[') this.#depth++;
      else if (c === '}' || c === ']') this.#depth--;
    }
    flush();
    return out;
  }
}

/** The calls of an assistant message as a chat template reads them: arguments as an object, as transformers passes them. */
export function templateToolCalls(calls: readonly ToolCall[]): Record<string, unknown>[] {
  return calls.map((c) => {
    let args: unknown = c.arguments;
    try {
      args = JSON.parse(c.arguments);
    } catch {
      // Arguments that are not JSON reach the template as the text they are.
    }
    return { id: c.id, type: 'function', function: { name: c.name, arguments: args } };
  });
}
