import { Ajv, type ErrorObject } from 'ajv';
import { NucleusError } from '@nucleus/sdk';

/** How a calibrator turns what it saw of a tensor into the range that maps onto int8. */
export type CalibratorKind = 'minmax' | 'percentile' | 'entropy';

/** Settings of the `static` transform, per model (`models[].quantize: { method: static, … }`). */
export interface StaticOptions {
  /** A JSONL file (one JSON object of input name → nested array or `{ dims, data }` per line) or a folder of them. */
  calibration: string;
  calibrator: CalibratorKind;
  /** `percentile`: the share of |values| the range keeps, in percent. */
  percentile: number;
  /** Weights with one scale per output channel (default) or one per tensor. */
  perChannel: boolean;
  /** Activations stored uint8 with a zero point (ORT's fast CPU path) or int8 symmetric. */
  activationType: 'uint8' | 'int8';
  /** Node names or op types to quantize (all MatMul, Gemm, Conv when empty) and to leave float. */
  include: string[];
  exclude: string[];
  /** Calibration samples read at most. */
  maxSamples: number;
}

/** Settings of the `dynamic` transform. */
export interface DynamicOptions {
  perChannel: boolean;
  include: string[];
  exclude: string[];
}

/** Settings of the `int8-dq` transform (int8 weights behind DequantizeLinear, float compute). */
export interface WeightDqOptions {
  /** One scale per output channel (default) or one per tensor. */
  perChannel: boolean;
  /** Weights with fewer values stay float32 (their scales and the extra node would cost more than they save). */
  minElements: number;
  include: string[];
  exclude: string[];
}

/** Settings of the `fp16` transform. */
export interface Fp16Options {
  include: string[];
  exclude: string[];
}

const filterProperties = {
  include: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    description: 'Node names or op types to quantize; empty: every node the method handles.',
  },
  exclude: {
    type: 'array',
    items: { type: 'string', minLength: 1 },
    description: 'Node names or op types to leave float.',
  },
} as const;

const SCHEMAS = {
  static: {
    type: 'object',
    additionalProperties: false,
    required: ['calibration'],
    properties: {
      calibration: { type: 'string', minLength: 1 },
      calibrator: { enum: ['minmax', 'percentile', 'entropy'], default: 'minmax' },
      percentile: { type: 'number', exclusiveMinimum: 50, maximum: 100, default: 99.99 },
      perChannel: { type: 'boolean', default: true },
      activationType: { enum: ['uint8', 'int8'], default: 'uint8' },
      maxSamples: { type: 'integer', minimum: 1, default: 512 },
      include: { ...filterProperties.include, default: [] },
      exclude: { ...filterProperties.exclude, default: [] },
    },
  },
  dynamic: {
    type: 'object',
    additionalProperties: false,
    properties: {
      perChannel: { type: 'boolean', default: true },
      include: { ...filterProperties.include, default: [] },
      exclude: { ...filterProperties.exclude, default: [] },
    },
  },
  weightDq: {
    type: 'object',
    additionalProperties: false,
    properties: {
      perChannel: { type: 'boolean', default: true },
      minElements: { type: 'integer', minimum: 0, default: 0 },
      include: { ...filterProperties.include, default: [] },
      exclude: { ...filterProperties.exclude, default: [] },
    },
  },
  fp16: {
    type: 'object',
    additionalProperties: false,
    properties: {
      include: { ...filterProperties.include, default: [] },
      exclude: { ...filterProperties.exclude, default: [] },
    },
  },
  weightOnly: {
    type: 'object',
    additionalProperties: false,
    properties: {
      blockSize: { enum: [16, 32, 64, 128, 256] },
      symmetric: { type: 'boolean' },
      accuracyLevel: { enum: [0, 1, 2, 3, 4] },
      ropeTables: { enum: ['computed', 'stored'] },
    },
  },
} as const;

const ajv = new Ajv({ useDefaults: true, allErrors: true });
const validators = Object.fromEntries(Object.entries(SCHEMAS).map(([k, s]) => [k, ajv.compile(s)])) as Record<
  keyof typeof SCHEMAS,
  ReturnType<typeof ajv.compile>
>;

function message(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? [])
    .map((e) =>
      e.keyword === 'additionalProperties'
        ? `unknown setting "${(e.params as { additionalProperty: string }).additionalProperty}"`
        : `${e.instancePath.slice(1) || 'settings'} ${e.message ?? 'invalid'}`,
    )
    .join('; ');
}

/**
 * The per-model settings of method `method` with defaults filled in; settings it does not take are a 400 naming
 * them, so a typo in a config fails the load instead of being ignored.
 */
export function parseQuantizeOptions<T>(
  method: 'static' | 'dynamic' | 'fp16' | 'weightOnly' | 'weightDq',
  options: Readonly<Record<string, unknown>> | undefined,
  label: string = method,
): T {
  const copy = structuredClone(options ?? {}) as Record<string, unknown>;
  const validate = validators[method];
  if (!validate(copy))
    throw new NucleusError(400, 'invalid_quantize_settings', `quantize ${label}: ${message(validate.errors)}`);
  return copy as T;
}
