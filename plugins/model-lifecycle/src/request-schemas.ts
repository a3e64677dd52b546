import { badRequest, type ModelLoadRequest, type ModelSwapRequest } from '@nucleus/sdk';
import { Ajv, type ValidateFunction } from 'ajv';

// The serving settings a load or swap may give, as the config's `models[]` entries spell them.
const SERVING_PROPERTIES = {
  version: { type: 'string', minLength: 1 },
  backend: { type: 'string', minLength: 1 },
  graphStyle: { type: 'string', enum: ['generic', 'contrib'] },
  // A transform's name, or an object naming it by `method` with its settings (the transform checks those).
  quantize: {
    type: ['string', 'object'],
    minLength: 1,
    required: ['method'],
    properties: { method: { type: 'string', minLength: 1 } },
  },
  quantizedMatmul: { type: 'string', enum: ['float32', 'int8'] },
  speculative: { type: 'string', minLength: 1 },
  tokenizer: { type: 'string', minLength: 1 },
  chatTemplate: { type: 'string', minLength: 1 },
  sha256: {
    type: ['string', 'object'],
    pattern: '^[0-9a-fA-F]{64}$',
    minProperties: 1,
    additionalProperties: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
  },
  workers: { type: 'integer', minimum: 1 },
  isolation: { type: 'string', enum: ['thread', 'process'] },
  warmup: { type: ['boolean', 'integer'], minimum: 0 },
  maxBatchSize: { type: 'integer', minimum: 1 },
  maxQueueDelayMs: { type: 'number', minimum: 0 },
  preferredBatchSizes: { type: 'array', items: { type: 'integer', minimum: 1 } },
  batching: { type: 'boolean' },
} as const;

/** `POST /admin/models`: a name and where the files are. */
export const LOAD_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'source'],
  properties: {
    name: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$', maxLength: 128 },
    source: { type: 'string', minLength: 1 },
    ...SERVING_PROPERTIES,
  },
} as const;

/** `POST /admin/models/:name/swap`: where the new files are, and how long the old version may drain. */
export const SWAP_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['source'],
  properties: {
    source: { type: 'string', minLength: 1 },
    drainTimeoutMs: { type: 'integer', minimum: 0 },
    ...SERVING_PROPERTIES,
  },
} as const;

const ajv = new Ajv({ allErrors: false, strict: false });

/** Compiled validators of the admin model request bodies. */
export const validators = {
  load: ajv.compile(LOAD_SCHEMA) as ValidateFunction<
    Required<Pick<ModelLoadRequest, 'name' | 'source'>> & ModelLoadRequest
  >,
  swap: ajv.compile(SWAP_SCHEMA) as ValidateFunction<ModelSwapRequest>,
};

/** The body as the schema types it, or 400 `invalid_body` naming the first field that is wrong and how. */
export function checkBody<T>(validate: ValidateFunction<T>, body: unknown, what: string): T {
  if (validate(body)) return body;
  const e = validate.errors?.[0];
  const where = e?.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : 'body';
  const extra =
    e?.keyword === 'additionalProperties'
      ? ` (${String((e.params as { additionalProperty?: string }).additionalProperty)})`
      : '';
  const allowed =
    e?.keyword === 'enum' ? `: ${(e.params as { allowedValues?: unknown[] }).allowedValues?.join(', ')}` : '';
  throw badRequest(
    'invalid_body',
    `${what}: ${where} ${e?.message ?? 'is invalid'}${extra}${allowed}`,
    e?.instancePath ? where : undefined,
  );
}
