import { randomBytes } from 'node:crypto';
import { badRequest, type ToolDefinition } from '@nucleus/sdk';
import { chatOutputOf as outputOf, toolChoiceOf, type ChatOutput } from '@nucleus/sdk/llm';

export { answerOf, type ChatOutput } from '@nucleus/sdk/llm';

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

/**
 * Reads `tools`, `tool_choice` and `response_format`: what the prompt shows and what the engine constrains, with every
 * schema checked first, so a schema that is not valid JSON Schema or uses a keyword constrained decoding cannot
 * guarantee is a 400 before anything runs.
 */
export function chatOutputOf(body: OutputFields): ChatOutput {
  const tools = body.tools != null && body.tools.length > 0 ? body.tools : undefined;
  const choice = toolChoiceOf(body.tool_choice, tools !== undefined);
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
  let schema: Record<string, unknown> | undefined;
  if (format?.type === 'json_object') schema = { type: 'object' };
  else if (format?.type === 'json_schema') {
    const given = format.json_schema.schema ?? {};
    schema = given === true ? {} : given === false ? { not: {} } : given;
  }
  return outputOf({
    ...(tools && { tools }),
    choice,
    ...(schema && { format: { schema, where: 'response_format.json_schema.schema', param: 'response_format' } }),
  });
}

/** A tool call id as OpenAI spells them. */
export function toolCallId(): string {
  return `call_${randomBytes(12).toString('hex')}`;
}
