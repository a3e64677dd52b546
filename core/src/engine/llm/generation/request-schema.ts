import { badRequest, type EmbedRequest, type GenerateRequest, type NucleusError } from '@nucleus/sdk';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import type { WireEmbedRequest, WireGenerateRequest } from './generation-messages.js';
import { MAX_TOP_LOGPROBS } from './token-logprobs.js';

/**
 * What a field's errors say: the parameter as the APIs spell it (the error's `param`, and `invalid_<param>` its code)
 * and the message a user can act on, by the JSON Schema keyword that failed (`*` for any other).
 */
interface FieldError {
  param: string;
  messages: Record<string, string>;
}

/** A JSON Schema whose properties say how their errors read (see {@link FieldError}). */
interface RequestSchema {
  type: 'object';
  properties: Record<string, Record<string, unknown> & { 'x-error': FieldError }>;
  [keyword: string]: unknown;
}

const LIMITS = { maxN: 16, maxStop: 16 };
const INTEGER = { type: 'integer', maximum: Number.MAX_SAFE_INTEGER };

/**
 * A generation request as the engine takes it, checked before the worker sees it. The worker checks what only it can
 * (the prompt's length against the context window, token ids against the vocabulary). Fields are checked in this
 * order, and the first one that fails is reported.
 */
export const GENERATE_REQUEST_SCHEMA: RequestSchema = {
  type: 'object',
  // Exactly one of them; the error for this is `missing_prompt` (see `generateError`).
  oneOf: [{ required: ['prompt'] }, { required: ['messages'] }],
  properties: {
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role', 'content'],
        properties: { role: { type: 'string' }, content: { type: 'string' } },
      },
      'x-error': {
        param: 'messages',
        messages: {
          '*': 'messages must be a non-empty list',
          item: 'messages[{index}] needs a string role and a string content',
        },
      },
    },
    n: {
      ...INTEGER,
      minimum: 1,
      maximum: LIMITS.maxN,
      'x-error': { param: 'n', messages: { '*': `n must be an integer from 1 to ${LIMITS.maxN}` } },
    },
    temperature: {
      type: 'number',
      minimum: 0,
      'x-error': { param: 'temperature', messages: { '*': 'temperature must be a number of at least 0' } },
    },
    topP: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 1,
      'x-error': { param: 'top_p', messages: { '*': 'top_p must be in (0, 1]' } },
    },
    // -1 is how vLLM spells "off".
    topK: {
      ...INTEGER,
      minimum: -1,
      'x-error': { param: 'top_k', messages: { '*': 'top_k must be an integer of at least 0 (or -1 for off)' } },
    },
    repetitionPenalty: {
      type: 'number',
      exclusiveMinimum: 0,
      'x-error': {
        param: 'repetition_penalty',
        messages: { '*': 'repetition_penalty must be greater than 0' },
      },
    },
    frequencyPenalty: {
      type: 'number',
      minimum: -2,
      maximum: 2,
      'x-error': { param: 'frequency_penalty', messages: { '*': 'frequency_penalty must be a number from -2 to 2' } },
    },
    presencePenalty: {
      type: 'number',
      minimum: -2,
      maximum: 2,
      'x-error': { param: 'presence_penalty', messages: { '*': 'presence_penalty must be a number from -2 to 2' } },
    },
    maxTokens: {
      ...INTEGER,
      minimum: 1,
      'x-error': { param: 'max_tokens', messages: { '*': 'max_tokens must be an integer of at least 1' } },
    },
    seed: {
      ...INTEGER,
      minimum: -Number.MAX_SAFE_INTEGER,
      'x-error': { param: 'seed', messages: { '*': 'seed must be an integer' } },
    },
    stop: {
      type: 'array',
      maxItems: LIMITS.maxStop,
      items: { type: 'string' },
      'x-error': {
        param: 'stop',
        messages: {
          '*': 'stop must be a string or a list of strings',
          maxItems: `at most ${LIMITS.maxStop} stop sequences`,
        },
      },
    },
    priority: {
      enum: ['high', 'normal', 'low'],
      'x-error': { param: 'priority', messages: { '*': 'priority must be high, normal or low' } },
    },
    conversationId: {
      type: 'string',
      minLength: 1,
      maxLength: 256,
      'x-error': {
        param: 'conversation_id',
        messages: { '*': 'conversation_id must be a string of 1 to 256 characters' },
      },
    },
    // Set by the API plugins from the server's authentication (`tenancyOf`), not by clients.
    tenant: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      pattern: '^[^:]*$',
      'x-error': { param: 'tenant', messages: { '*': 'tenant must be a string of 1 to 64 characters without ":"' } },
    },
    cacheNamespace: {
      type: 'string',
      minLength: 1,
      maxLength: 64,
      'x-error': {
        param: 'cache_namespace',
        messages: { '*': 'cacheNamespace must be a string of 1 to 64 characters' },
      },
    },
    tools: {
      type: 'array',
      items: {
        type: 'object',
        required: ['type', 'function'],
        properties: {
          type: { const: 'function' },
          function: { type: 'object', required: ['name'], properties: { name: { type: 'string', minLength: 1 } } },
        },
      },
      'x-error': {
        param: 'tools',
        messages: { '*': "tools must be a list of {type: 'function', function: {name, description?, parameters?}}" },
      },
    },
    jsonSchema: {
      type: 'object',
      'x-error': { param: 'response_format', messages: { '*': 'jsonSchema must be a JSON Schema object' } },
    },
    logprobs: {
      ...INTEGER,
      minimum: 0,
      maximum: MAX_TOP_LOGPROBS,
      'x-error': {
        param: 'top_logprobs',
        messages: { '*': `top_logprobs must be an integer from 0 to ${MAX_TOP_LOGPROBS}` },
      },
    },
    prompt: {
      anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'number' } }],
      'x-error': { param: 'prompt', messages: { '*': 'prompt must be a string or a list of token ids' } },
    },
  },
};

/** An embedding request as the engine takes it. */
export const EMBED_REQUEST_SCHEMA: RequestSchema = {
  type: 'object',
  required: ['input'],
  properties: {
    input: {
      anyOf: [
        { type: 'string' },
        { type: 'array', minItems: 1, items: { type: 'number' } },
        {
          type: 'array',
          minItems: 1,
          items: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'number' } }] },
        },
      ],
      'x-error': {
        param: 'input',
        messages: {
          '*': 'input must be a string, a list of strings, a list of token ids, or a list of such lists',
        },
      },
    },
    dimensions: {
      ...INTEGER,
      minimum: 1,
      'x-error': { param: 'dimensions', messages: { '*': 'dimensions must be a positive integer' } },
    },
    pooling: {
      enum: ['mean', 'cls', 'last'],
      'x-error': { param: 'pooling', messages: { '*': 'pooling must be mean, cls or last, not {value}' } },
    },
  },
};

// `x-error` is this file's annotation: ajv keeps it out of the check.
const ajv = new Ajv({ allErrors: true, strictRequired: false, keywords: ['x-error'] });
const validateGenerate = ajv.compile(GENERATE_REQUEST_SCHEMA);
const validateEmbed = ajv.compile(EMBED_REQUEST_SCHEMA);

/** Checks a generation request against {@link GENERATE_REQUEST_SCHEMA} and turns it into plain data for the worker. */
export function toWireGenerate(r: GenerateRequest): WireGenerateRequest {
  check(validateGenerate, GENERATE_REQUEST_SCHEMA, r, () => {
    const hasPrompt = r.prompt !== undefined;
    return badRequest(
      'missing_prompt',
      hasPrompt ? 'send either prompt or messages, not both' : 'the request needs a prompt or messages',
      hasPrompt ? 'messages' : 'prompt',
    );
  });
  return {
    ...(r.prompt !== undefined && { prompt: r.prompt }),
    ...(r.messages !== undefined && {
      messages: r.messages.map((m) => ({
        role: m.role,
        content: m.content,
        ...(m.name !== undefined && { name: m.name }),
        ...(m.toolCalls !== undefined && { toolCalls: m.toolCalls.map((c) => ({ ...c })) }),
        ...(m.toolCallId !== undefined && { toolCallId: m.toolCallId }),
      })),
    }),
    addGenerationPrompt: r.addGenerationPrompt ?? true,
    n: r.n ?? 1,
    priority: r.priority ?? 'normal',
    ...(r.temperature !== undefined && { temperature: r.temperature }),
    ...(r.topP !== undefined && { topP: r.topP }),
    ...(r.topK !== undefined && { topK: r.topK === -1 ? 0 : r.topK }),
    ...(r.seed !== undefined && { seed: r.seed }),
    ...(r.repetitionPenalty !== undefined && { repetitionPenalty: r.repetitionPenalty }),
    ...(r.frequencyPenalty !== undefined && { frequencyPenalty: r.frequencyPenalty }),
    ...(r.presencePenalty !== undefined && { presencePenalty: r.presencePenalty }),
    ...(r.maxTokens !== undefined && { maxTokens: r.maxTokens }),
    stop: (r.stop ?? []).filter((s) => s.length > 0),
    ignoreEos: r.ignoreEos ?? false,
    ...(r.conversationId !== undefined && { conversationId: qualifiedConversation(r.conversationId, r.tenant) }),
    ...(r.cacheNamespace !== undefined && { cacheNamespace: r.cacheNamespace }),
    ...(r.buffered === true && { buffered: true }),
    ...(r.tools !== undefined && { tools: r.tools }),
    ...(r.jsonSchema !== undefined && { jsonSchema: r.jsonSchema }),
    ...(r.logprobs !== undefined && { logprobs: r.logprobs }),
  };
}

/**
 * A conversation id as the prefix caches tag blocks with it: one tenant's `talk-1` is not another's. A tenant has no
 * `:`, so the pair reads back one way only.
 */
export function qualifiedConversation(conversationId: string, tenant: string | undefined): string {
  return tenant === undefined ? conversationId : `${tenant}:${conversationId}`;
}

/** Checks an embedding request against {@link EMBED_REQUEST_SCHEMA} and turns it into plain data for the worker. */
export function toWireEmbed(r: EmbedRequest): WireEmbedRequest {
  check(validateEmbed, EMBED_REQUEST_SCHEMA, r);
  const input = r.input;
  const inputs =
    typeof input === 'string' || input.every((x) => typeof x === 'number')
      ? [input as string | number[]]
      : (input as (string | number[])[]);
  return {
    inputs,
    normalize: r.normalize ?? true,
    ...(r.pooling !== undefined && { pooling: r.pooling }),
    ...(r.dimensions !== undefined && { dimensions: r.dimensions }),
  };
}

// Throws the 400 of the first field (in the schema's order) that fails; `rootError` answers a failure of the request
// as a whole (which fields go together).
function check(
  validate: ValidateFunction,
  schema: RequestSchema,
  request: unknown,
  rootError?: () => NucleusError,
): void {
  if (validate(request)) return;
  const errors = validate.errors ?? [];
  const whole = errors.filter((e) => e.instancePath === '');
  if (rootError && whole.length > 0) throw rootError();
  const missing = new Set(whole.filter((e) => e.keyword === 'required').map((e) => String(e.params.missingProperty)));
  for (const [field, fieldSchema] of Object.entries(schema.properties)) {
    const failed = errors.filter((e) => e.instancePath === `/${field}` || e.instancePath.startsWith(`/${field}/`));
    if (failed.length === 0 && !missing.has(field)) continue;
    const { param, messages } = fieldSchema['x-error'];
    throw badRequest(
      `invalid_${param}`,
      messageOf(failed, messages, (request as Record<string, unknown>)[field]),
      param,
    );
  }
  throw badRequest('invalid_request', ajv.errorsText(errors), undefined);
}

function messageOf(failed: readonly ErrorObject[], messages: Record<string, string>, value: unknown): string {
  const item = failed.find((e) => /^\/[^/]+\/\d+(\/|$)/.test(e.instancePath));
  let message = messages['*']!;
  for (const e of failed) if (messages[e.keyword] !== undefined) message = messages[e.keyword]!;
  if (item && messages.item !== undefined) message = messages.item.replace('{index}', item.instancePath.split('/')[2]!);
  return message.replace('{value}', JSON.stringify(value));
}
