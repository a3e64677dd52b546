import { badRequest } from '@nucleus/sdk';
import { Ajv, type ValidateFunction } from 'ajv';

/** One tensor of a KServe v2 inference request. */
export interface KServeInput {
  name: string;
  shape: number[];
  datatype: string;
  parameters?: Record<string, unknown>;
  data: unknown;
}

/** A KServe v2 inference request body. */
export interface KServeInferBody {
  id?: string;
  parameters?: Record<string, unknown>;
  inputs: KServeInput[];
  outputs?: Array<{ name: string; parameters?: Record<string, unknown> }>;
}

/** A native `/infer` body (also one item of `/batch_infer`). */
export interface NativeInferBody {
  model: string;
  version?: string | number;
  /** By input name: a nested list, or `{data, shape, dtype?}` with flat data. */
  inputs: Record<string, unknown>;
  outputs?: string[];
  /** Also explain the answer (per-feature attributions), where an explainer plugin is active. */
  explain?: boolean;
}

/** A `/batch_infer` (and `/stream_infer`) body. */
export interface BatchInferBody {
  requests: unknown[];
}

const params = { type: 'object' };

/** Open Inference Protocol v2: inference request JSON object. */
export const KSERVE_INFER_SCHEMA = {
  type: 'object',
  required: ['inputs'],
  properties: {
    id: { type: 'string' },
    parameters: params,
    inputs: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'shape', 'datatype', 'data'],
        properties: {
          name: { type: 'string', minLength: 1 },
          shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
          datatype: { type: 'string', minLength: 1 },
          parameters: params,
          data: {},
        },
      },
    },
    outputs: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string', minLength: 1 }, parameters: params },
      },
    },
  },
} as const;

/** Native `/infer` request. */
export const NATIVE_INFER_SCHEMA = {
  type: 'object',
  required: ['model', 'inputs'],
  properties: {
    model: { type: 'string', minLength: 1 },
    version: { type: ['string', 'integer'] },
    inputs: { type: 'object', minProperties: 1 },
    outputs: { type: 'array', items: { type: 'string', minLength: 1 } },
    explain: { type: 'boolean' },
  },
} as const;

/** Native `/batch_infer` and `/stream_infer` request: a list of `/infer` bodies, each checked on its own. */
export const BATCH_INFER_SCHEMA = {
  type: 'object',
  required: ['requests'],
  properties: { requests: { type: 'array', minItems: 1, maxItems: 1024, items: {} } },
} as const;

/**
 * What a native request must hold before the `preInference` hooks run: the model it addresses. The rest is checked
 * against {@link NATIVE_INFER_SCHEMA} after the hooks, so a hook may build `inputs` (say, from `features`).
 */
export const NATIVE_ADDRESS_SCHEMA = {
  type: 'object',
  required: ['model'],
  properties: { model: { type: 'string', minLength: 1 }, version: { type: ['string', 'integer'] } },
} as const;

/** What a v2 request must be before the `preInference` hooks run; the full check follows the hooks. */
export const KSERVE_ENVELOPE_SCHEMA = { type: 'object' } as const;

/** Repository extension: index request. */
export const REPOSITORY_INDEX_SCHEMA = {
  type: 'object',
  properties: { ready: { type: 'boolean' } },
} as const;

const ajv = new Ajv({ allErrors: false, strict: false });

/** Compiled validators for the request bodies. */
export const validators = {
  kserveInfer: ajv.compile<KServeInferBody>(KSERVE_INFER_SCHEMA),
  nativeInfer: ajv.compile<NativeInferBody>(NATIVE_INFER_SCHEMA),
  batchInfer: ajv.compile<BatchInferBody>(BATCH_INFER_SCHEMA),
  nativeAddress: ajv.compile<{ model: string; version?: string | number }>(NATIVE_ADDRESS_SCHEMA),
  kserveEnvelope: ajv.compile<Record<string, unknown>>(KSERVE_ENVELOPE_SCHEMA),
  repositoryIndex: ajv.compile<{ ready?: boolean }>(REPOSITORY_INDEX_SCHEMA),
};

/** Returns the body typed, or throws 400 `invalid_body` saying which field is wrong. */
export function checkBody<T>(validate: ValidateFunction<T>, body: unknown, what: string): T {
  if (validate(body)) return body;
  const e = validate.errors?.[0];
  const where = e?.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : 'body';
  const message = e ? `${where} ${e.message ?? 'is invalid'}` : 'is invalid';
  throw badRequest('invalid_body', `${what}: ${message}`, e?.instancePath ? where : undefined);
}
