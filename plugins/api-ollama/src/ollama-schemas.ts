import { Ajv, type ErrorObject } from 'ajv';
import { badRequest } from '@nucleus/sdk';

// Request bodies as Ollama's server reads them: types are checked here, values that depend on the model by the engine.
// Unknown fields are let through, as Ollama lets them through (clients send fields a server version may not know).

const keepAlive = { anyOf: [{ type: 'string' }, { type: 'number' }] };
const format = { anyOf: [{ type: 'string' }, { type: 'object' }] };

/** `options`: the sampling options Nucleus applies; load-time ones (`num_ctx`, `num_gpu` …) are type-checked only. */
const options = {
  type: 'object',
  properties: {
    temperature: { type: 'number' },
    top_p: { type: 'number' },
    top_k: { type: 'integer' },
    seed: { type: 'integer' },
    num_predict: { type: 'integer' },
    stop: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    repeat_penalty: { type: 'number' },
    presence_penalty: { type: 'number' },
    frequency_penalty: { type: 'number' },
    num_ctx: { type: 'integer', minimum: 1 },
  },
};

/** A function the model may call, as Ollama (and OpenAI) spell it. */
const tool = {
  type: 'object',
  required: ['function'],
  properties: {
    type: { const: 'function' },
    function: {
      type: 'object',
      required: ['name'],
      properties: {
        name: { type: 'string', minLength: 1 },
        description: { type: 'string' },
        parameters: { type: 'object' },
      },
    },
  },
};

/** A call an assistant turn made, sent back with its result: Ollama's arguments are an object. */
const toolCall = {
  type: 'object',
  required: ['function'],
  properties: {
    function: {
      type: 'object',
      required: ['name'],
      properties: { name: { type: 'string', minLength: 1 }, arguments: { type: 'object' } },
    },
  },
};

/** Not Ollama's (its models always choose freely): Nucleus's extension, with OpenAI's values, to force a call. */
const toolChoice = {
  anyOf: [
    { enum: ['none', 'auto', 'required'] },
    {
      type: 'object',
      required: ['function'],
      properties: {
        type: { const: 'function' },
        function: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } },
      },
    },
  ],
};

/** Fields every generation request may carry. */
const generation = { stream: { type: 'boolean' }, format, options, keep_alive: keepAlive, think: {} };
const model = { type: 'string', minLength: 1 };

/** `POST /api/generate`. */
export const GENERATE_SCHEMA = {
  type: 'object',
  required: ['model'],
  properties: {
    model,
    prompt: { type: 'string' },
    suffix: { type: 'string' },
    system: { type: 'string' },
    template: { type: 'string' },
    context: { type: 'array', items: { type: 'integer' } },
    raw: { type: 'boolean' },
    images: { type: 'array', items: { type: 'string' } },
    ...generation,
  },
};

/** `POST /api/chat`. */
export const CHAT_SCHEMA = {
  type: 'object',
  required: ['model'],
  properties: {
    model,
    messages: {
      type: 'array',
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { enum: ['system', 'user', 'assistant', 'tool'] },
          content: { type: 'string' },
          images: { type: 'array', items: { type: 'string' } },
          tool_calls: { type: 'array', items: toolCall },
          tool_name: { type: 'string' },
        },
      },
    },
    tools: { type: 'array', items: tool },
    tool_choice: toolChoice,
    ...generation,
  },
};

/** `POST /api/embed`. */
export const EMBED_SCHEMA = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model,
    input: { anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 2048 }] },
    truncate: { type: 'boolean' },
    dimensions: { type: 'integer', minimum: 1 },
    options,
    keep_alive: keepAlive,
  },
};

/** `POST /api/embeddings` (the older single-prompt form). */
export const EMBEDDINGS_SCHEMA = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: { model, prompt: { type: 'string' }, options, keep_alive: keepAlive },
};

/** `POST /api/show` and `POST /api/pull`: the model as `model`, or as `name` as older clients send it. */
export const NAMED_SCHEMA = {
  type: 'object',
  anyOf: [{ required: ['model'] }, { required: ['name'] }],
  properties: {
    model,
    name: model,
    verbose: { type: 'boolean' },
    insecure: { type: 'boolean' },
    stream: { type: 'boolean' },
  },
};

const ajv = new Ajv({ allErrors: false, strict: false });

/** A compiled check that throws 400 saying which field is wrong, in words an Ollama user reads. */
export function validator<T>(schema: Record<string, unknown>): (body: unknown) => T {
  const validate = ajv.compile(schema);
  return (body) => {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw badRequest('invalid_request', 'the request body must be a JSON object');
    if (!validate(body)) throw schemaError(validate.errors?.[0]);
    return body as T;
  };
}

function schemaError(error: ErrorObject | undefined): Error {
  if (!error) return badRequest('invalid_request', 'the request body is invalid');
  if (error.keyword === 'required') {
    const field = (error.params as { missingProperty: string }).missingProperty;
    const within = error.instancePath.replace(/^\//, '').replaceAll('/', '.');
    return badRequest(
      'missing_field',
      `${within ? `${within}.` : ''}${field} is required`,
      within.split('.')[0] || field,
    );
  }
  if (error.keyword === 'anyOf' && error.instancePath === '')
    return badRequest('missing_field', 'model is required', 'model');
  const field = error.instancePath.replace(/^\//, '').replaceAll('/', '.');
  const message =
    error.keyword === 'anyOf'
      ? 'has the wrong type'
      : error.keyword === 'enum'
        ? `must be one of ${(error.params as { allowedValues: unknown[] }).allowedValues.join(', ')}`
        : (error.message ?? 'is invalid');
  return badRequest('invalid_field', `invalid value for ${field}: ${message}`, field.split('.')[0]);
}
