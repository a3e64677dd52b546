import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { badRequest } from '@nucleus/sdk';

// Request bodies as JSON Schemas: types are checked here, value ranges that depend on the model by the engine.
// Unknown fields are allowed, as the official clients send fields a server may not know.

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });
const int = (minimum?: number) => nullable({ type: 'integer', ...(minimum !== undefined && { minimum }) });
const num = () => nullable({ type: 'number' });
const stop = nullable({
  description: 'a string or a list of strings',
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }],
});
const tokenIds = { type: 'array', items: { type: 'integer', minimum: 0 } };
// Alternatives per token (the engine's bound, OpenAI's for `top_logprobs`).
const topCount = nullable({ type: 'integer', minimum: 0, maximum: 20 });
const priority = nullable({ anyOf: [{ enum: ['high', 'normal', 'low'] }, { type: 'integer' }] });

/** Sampling fields shared by every generation endpoint, OpenAI names plus the vLLM extras. */
const sampling = {
  max_tokens: int(1),
  temperature: num(),
  top_p: num(),
  top_k: int(),
  n: int(1),
  seed: int(),
  stop,
  frequency_penalty: num(),
  presence_penalty: num(),
  repetition_penalty: num(),
  ignore_eos: nullable({ type: 'boolean' }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({ type: 'object', properties: { include_usage: nullable({ type: 'boolean' }) } }),
  priority,
  conversation_id: nullable({ type: 'string', minLength: 1, maxLength: 256 }),
};

const content = nullable({
  anyOf: [
    { type: 'string' },
    {
      type: 'array',
      items: { type: 'object', required: ['type'], properties: { type: { type: 'string' }, text: { type: 'string' } } },
    },
  ],
});

/** The chat roles OpenAI accepts. */
export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool'];

const messages = {
  type: 'array',
  minItems: 1,
  items: {
    type: 'object',
    required: ['role'],
    properties: {
      role: { enum: CHAT_ROLES },
      content,
      name: { type: 'string' },
      tool_call_id: { type: 'string' },
      tool_calls: nullable({
        type: 'array',
        items: {
          type: 'object',
          required: ['id', 'function'],
          properties: {
            id: { type: 'string' },
            type: { const: 'function' },
            function: {
              type: 'object',
              required: ['name', 'arguments'],
              properties: { name: { type: 'string' }, arguments: { type: 'string' } },
            },
          },
        },
      }),
    },
  },
};

const tools = nullable({
  type: 'array',
  items: {
    type: 'object',
    required: ['type', 'function'],
    properties: {
      type: { const: 'function' },
      function: {
        type: 'object',
        required: ['name'],
        properties: {
          name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
          description: { type: 'string' },
          parameters: { type: 'object' },
          strict: nullable({ type: 'boolean' }),
        },
      },
    },
  },
});

const toolChoice = nullable({
  description: "'none', 'auto', 'required' or {type: 'function', function: {name}}",
  anyOf: [
    { enum: ['none', 'auto', 'required'] },
    {
      type: 'object',
      required: ['type', 'function'],
      properties: {
        type: { const: 'function' },
        function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      },
    },
  ],
});

const responseFormat = nullable({
  description: "{type: 'text'}, {type: 'json_object'} or {type: 'json_schema', json_schema: {name, schema, strict}}",
  anyOf: [
    { type: 'object', required: ['type'], properties: { type: { enum: ['text', 'json_object'] } } },
    {
      type: 'object',
      required: ['type', 'json_schema'],
      properties: {
        type: { const: 'json_schema' },
        json_schema: {
          type: 'object',
          required: ['name'],
          properties: {
            name: { type: 'string', pattern: '^[a-zA-Z0-9_-]{1,64}$' },
            description: { type: 'string' },
            schema: { type: ['object', 'boolean'] },
            strict: nullable({ type: 'boolean' }),
          },
        },
      },
    },
  ],
});

/** `POST /v1/chat/completions`. */
export const CHAT_COMPLETION_SCHEMA = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages,
    ...sampling,
    max_completion_tokens: int(1),
    tools,
    tool_choice: toolChoice,
    parallel_tool_calls: nullable({ type: 'boolean' }),
    response_format: responseFormat,
    logprobs: nullable({ type: 'boolean' }),
    top_logprobs: topCount,
  },
};

/** `POST /v1/completions`. */
export const COMPLETION_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    model: { type: 'string', minLength: 1 },
    prompt: {
      description:
        'a string, a non-empty list of strings, a non-empty list of token ids (integers) or a non-empty list of such lists',
      anyOf: [
        { type: 'string' },
        { type: 'array', items: { type: 'string' }, minItems: 1 },
        { ...tokenIds, minItems: 1 },
        { type: 'array', items: tokenIds, minItems: 1 },
      ],
    },
    echo: nullable({ type: 'boolean' }),
    ...sampling,
    logprobs: topCount,
  },
};

/** Most inputs one embeddings request may carry, as OpenAI's API allows. */
export const MAX_EMBEDDING_INPUTS = 2048;

/** `POST /v1/embeddings` and `POST /embeddings`. */
export const EMBEDDING_SCHEMA = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    // As OpenAI: no empty input, no empty string in a list, and at most 2048 inputs (a million one-word inputs
    // would hold the embedding model's worker for minutes, and every request behind it).
    input: {
      description: `a non-empty string, a list of 1 to ${MAX_EMBEDDING_INPUTS} non-empty strings, a non-empty list of token ids (integers) or a list of 1 to ${MAX_EMBEDDING_INPUTS} such lists`,
      anyOf: [
        { type: 'string', minLength: 1 },
        { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, maxItems: MAX_EMBEDDING_INPUTS },
        { ...tokenIds, minItems: 1 },
        { type: 'array', items: { ...tokenIds, minItems: 1 }, minItems: 1, maxItems: MAX_EMBEDDING_INPUTS },
      ],
    },
    encoding_format: nullable({ enum: ['float', 'base64'] }),
    dimensions: int(1),
    pooling: nullable({ enum: ['mean', 'cls', 'last'] }),
    normalize: nullable({ type: 'boolean' }),
  },
};

/** `POST /generate`. */
export const GENERATE_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    model: { type: 'string', minLength: 1 },
    prompt: {
      description: 'a string or a non-empty list of token ids (integers)',
      anyOf: [{ type: 'string' }, { ...tokenIds, minItems: 1 }],
    },
    ...sampling,
    n_probs: topCount,
  },
};

/** `POST /chat`. */
export const CHAT_SCHEMA = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    model: { type: 'string', minLength: 1 },
    messages,
    add_generation_prompt: nullable({ type: 'boolean' }),
    ...sampling,
    n_probs: topCount,
  },
};

// verbose: each error carries its schema, whose `description` says what a field with alternatives may be.
const ajv = new Ajv({ allErrors: false, strict: false, verbose: true });

/** A compiled check that throws 400 naming the first bad field. */
export function validator<T>(schema: Record<string, unknown>): (body: unknown) => T {
  const validate: ValidateFunction = ajv.compile(schema);
  return (body) => {
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      throw badRequest(
        'invalid_request',
        'the request body must be a JSON object (send Content-Type: application/json)',
      );
    }
    if (!validate(body)) throw schemaError(validate.errors ?? []);
    return body as T;
  };
}

function schemaError(errors: ErrorObject[]): Error {
  // A field with alternatives (anyOf) fails with each alternative's error first, then its own: that one says what
  // the field may be.
  const error = errors.find((e) => e.keyword === 'anyOf' && describedAs(e) !== undefined) ?? errors[0];
  if (!error) return badRequest('invalid_request', 'the request body is invalid');
  if (error.keyword === 'required') {
    const field = (error.params as { missingProperty: string }).missingProperty;
    return badRequest('missing_field', `'${field}' is a required property`, field);
  }
  const path = error.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const field = path || 'body';
  const param = path.split('.')[0] || undefined;
  // anyOf failures report every branch; name the field and what it may be instead.
  const message =
    error.keyword === 'anyOf' || error.keyword === 'type' || error.keyword === 'enum'
      ? describe(error)
      : (error.message ?? 'is invalid');
  return badRequest('invalid_field', `'${field}' ${message}`, param);
}

function describedAs(error: ErrorObject): string | undefined {
  const description = (error.parentSchema as { description?: unknown } | undefined)?.description;
  return typeof description === 'string' ? description : undefined;
}

function describe(error: ErrorObject): string {
  const description = describedAs(error);
  if (error.keyword === 'anyOf' && description !== undefined) return `must be ${description}`;
  if (error.keyword === 'enum')
    return `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.map((v) => JSON.stringify(v)).join(', ')}`;
  if (error.keyword === 'type') return `must be ${(error.params as { type: string }).type}`;
  return 'has the wrong type';
}
