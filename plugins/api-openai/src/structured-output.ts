import { randomBytes } from 'node:crypto';
import { Ajv, type ValidateFunction } from 'ajv';
import { badRequest, NucleusError, type ToolDefinition } from '@nucleus/sdk';
import {
  compileJsonSchema,
  parseToolCalls,
  toolCallSchema,
  type ParsedAnswer,
  type ToolChoice,
} from '@nucleus/sdk/llm';

/** The fields of a chat completion body that shape its output. */
export interface OutputFields {
  tools?: ToolDefinition[] | null;
  tool_choice?: 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } } | null;
  response_format?:
    | { type: 'text' | 'json_object' }
    | {
        type: 'json_schema';
        json_schema: { name: string; schema?: Record<string, unknown> | boolean; strict?: boolean | null };
      }
    | null;
}

/** What a chat completion's output must be, and how its text becomes a message. */
export interface ChatOutput {
  /** Rendered into the prompt by the chat template. */
  tools?: ToolDefinition[];
  /** `none` when the request has no tools. */
  choice: ToolChoice;
  /** The schema the engine decodes under (a `response_format`, or a forced tool call). */
  jsonSchema?: Record<string, unknown>;
  /** Checks a complete output against that schema. */
  validate?: ValidateFunction;
}

// Compiled per request and dropped after: a server sees a new schema object every request.
const ajv = new Ajv({ strict: false, allErrors: false });

/**
 * Reads `tools`, `tool_choice` and `response_format`: what the prompt shows and what the engine constrains, with every
 * schema checked first, so a schema that is not valid JSON Schema or uses a keyword constrained decoding cannot
 * guarantee is a 400 before anything runs.
 */
export function chatOutputOf(body: OutputFields): ChatOutput {
  const tools = body.tools != null && body.tools.length > 0 ? body.tools : undefined;
  const choice = toolChoiceOf(body.tool_choice, tools);
  for (const [i, t] of (tools ?? []).entries())
    if (t.function.parameters !== undefined)
      checkSchema(t.function.parameters, `tools[${i}].function.parameters`, 'tools');
  const format = body.response_format;
  const structured = format != null && format.type !== 'text';
  if (structured && choice !== 'none' && choice !== 'auto')
    throw badRequest(
      'conflicting_fields',
      `response_format ${format.type} cannot be combined with tool_choice ${JSON.stringify(body.tool_choice)}: a forced tool call has its own schema`,
      'response_format',
    );
  if (structured && tools !== undefined && choice === 'auto')
    throw badRequest(
      'conflicting_fields',
      `response_format ${format.type} leaves no room for tool calls: send tool_choice 'none' (or no tools) with it`,
      'response_format',
    );
  const shown = choice === 'none' ? undefined : tools;
  let jsonSchema: Record<string, unknown> | undefined;
  if (format?.type === 'json_object') jsonSchema = { type: 'object' };
  else if (format?.type === 'json_schema') {
    const schema = format.json_schema.schema ?? {};
    jsonSchema = schema === true ? {} : schema === false ? { not: {} } : schema;
  } else if (tools !== undefined) jsonSchema = toolCallSchema(tools, choice);
  if (jsonSchema === undefined) return { ...(shown && { tools: shown }), choice };
  const param = structured ? 'response_format' : 'tool_choice';
  const validate = checkSchema(
    jsonSchema,
    param === 'response_format' ? 'response_format.json_schema.schema' : 'the tool call',
    param,
  );
  return { ...(shown && { tools: shown }), choice, jsonSchema, validate };
}

function toolChoiceOf(raw: OutputFields['tool_choice'], tools: ToolDefinition[] | undefined): ToolChoice {
  if (raw == null) return tools ? 'auto' : 'none';
  if (raw === 'none') return 'none';
  if (!tools)
    throw badRequest('missing_tools', `tool_choice ${JSON.stringify(raw)} needs a non-empty tools list`, 'tool_choice');
  return typeof raw === 'string' ? raw : { name: raw.function.name };
}

// A schema ajv compiles and constrained decoding supports, or a 400 saying which of the two it is not.
function checkSchema(schema: Record<string, unknown>, where: string, param: string): ValidateFunction {
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

/** A tool call id as OpenAI spells them. */
export function toolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}

/**
 * A finished choice's message: its tool calls split out of the text, and a complete constrained output checked
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
