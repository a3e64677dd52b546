import { Ajv, type ValidateFunction } from 'ajv';
import { badRequest, NucleusError } from '../errors.js';
import type { ToolDefinition } from '../generation.js';
import { compileJsonSchema } from './json-grammar.js';
import { parseToolCalls, toolCallSchema, type ParsedAnswer, type ToolChoice } from './tool-calls.js';

/** What a chat answer must be, and how its text becomes a message: the same for every API that offers tools or JSON. */
export interface ChatOutput {
  /** Rendered into the prompt by the chat template. */
  tools?: ToolDefinition[];
  /** `none` when the request has no tools. */
  choice: ToolChoice;
  /** The schema the engine decodes under (a requested format, or a forced tool call). */
  jsonSchema?: Record<string, unknown>;
  /** Checks a complete output against that schema. */
  validate?: ValidateFunction;
}

/** What a request asks of its answer, read from the API's own fields (which conflict is the API's to refuse). */
export interface ChatOutputRequest {
  /** The tools offered; empty or absent: none. */
  tools?: readonly ToolDefinition[];
  /** How they may be called (see {@link toolCallSchema}). */
  choice: ToolChoice;
  /** A schema the answer must match (JSON mode: `{type: 'object'}`), where the request gave it and its field. */
  format?: { schema: Record<string, unknown>; where: string; param: string };
  /** The field the tools came in, and the one the choice came in, for errors; default `tools` and `tool_choice`. */
  params?: { tools: string; choice: string };
}

// Compiled per request and dropped after: a server sees a new schema object every request.
const ajv = new Ajv({ strict: false, allErrors: false });

/**
 * What the prompt shows and what the engine constrains, with every schema checked first: one that is not valid JSON
 * Schema, or uses a keyword constrained decoding cannot guarantee, is a 400 naming the request field, before anything
 * runs. Tools are not shown when the choice is `none`.
 */
export function chatOutputOf(request: ChatOutputRequest): ChatOutput {
  const params = request.params ?? { tools: 'tools', choice: 'tool_choice' };
  const tools = request.tools !== undefined && request.tools.length > 0 ? [...request.tools] : undefined;
  for (const [i, t] of (tools ?? []).entries())
    if (t.function.parameters !== undefined)
      checkOutputSchema(t.function.parameters, `${params.tools}[${i}].function.parameters`, params.tools);
  const shown = request.choice === 'none' ? undefined : tools;
  const forced = tools === undefined ? undefined : toolCallSchema(tools, request.choice);
  const format = request.format;
  const jsonSchema = format?.schema ?? forced;
  if (jsonSchema === undefined) return { ...(shown && { tools: shown }), choice: request.choice };
  const validate = format
    ? checkOutputSchema(format.schema, format.where, format.param)
    : checkOutputSchema(jsonSchema, 'the tool call', params.choice);
  return { ...(shown && { tools: shown }), choice: request.choice, jsonSchema, validate };
}

/** How a request lets the model call tools: what clients send (`none`, `auto`, `required`, or one function by name). */
export type ToolChoiceField = 'none' | 'auto' | 'required' | { type?: 'function'; function: { name: string } } | null;

/** The choice a request's field makes: absent is `auto` with tools and `none` without; a forcing one needs tools. */
export function toolChoiceOf(raw: ToolChoiceField | undefined, hasTools: boolean, param = 'tool_choice'): ToolChoice {
  if (raw == null) return hasTools ? 'auto' : 'none';
  if (raw === 'none') return 'none';
  if (!hasTools)
    throw badRequest('missing_tools', `${param} ${JSON.stringify(raw)} needs a non-empty tools list`, param);
  return typeof raw === 'string' ? raw : { name: raw.function.name };
}

/** A schema ajv compiles and constrained decoding supports, or a 400 (`param`) saying which of the two it is not. */
export function checkOutputSchema(schema: Record<string, unknown>, where: string, param: string): ValidateFunction {
  let validate: ValidateFunction;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw badRequest(
      'invalid_schema',
      `${where} is not a valid JSON Schema: ${err instanceof Error ? err.message : String(err)}`,
      param,
    );
  } finally {
    ajv.removeSchema(schema);
  }
  compileJsonSchema(schema, param);
  return validate;
}

/**
 * A finished answer as a message: its tool calls split out of the text, and a complete constrained output checked
 * against its schema (an output that fails is the server's fault: 500, never passed on as valid).
 */
export function answerOf(output: ChatOutput, text: string, complete: boolean): ParsedAnswer {
  if (!complete) return { content: text, calls: [] };
  if (output.validate) {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw constraintBroken('is not JSON');
    }
    if (!output.validate(value))
      throw constraintBroken(`does not match its schema: ${ajv.errorsText(output.validate.errors)}`);
  }
  return output.choice === 'none' ? { content: text, calls: [] } : parseToolCalls(text, output.choice);
}

function constraintBroken(what: string): NucleusError {
  return new NucleusError(500, 'constraint_failed', `the constrained output ${what}`);
}
