import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { NucleusError, noProgress, sha256File, type Progress } from '@nucleus/sdk';
import { Ajv, type ErrorObject } from 'ajv';

/** One input or output as model.json describes it. */
export interface ManifestTensor {
  name: string;
  dtype?: string;
  shape?: (number | string)[];
  description?: string;
}

/** Per-model batching settings a model.json may carry; config entries override them. */
export interface ManifestBatching {
  enabled?: boolean;
  maxBatchSize?: number;
  maxQueueDelayMs?: number;
  /** Batch sizes the model runs best at; the batcher dispatches as soon as the largest one fills. */
  preferredBatchSizes?: number[];
  /** Pad ragged requests into one batch; on by default when the model has an `attention_mask` input. */
  padding?: boolean;
}

/** model.json: what a model is, how it was made and checked, and how to batch it. Unknown keys are kept and shown. */
export interface ModelManifest {
  name?: string;
  version?: string | number;
  framework?: string;
  description?: string;
  task?: string;
  metrics?: Record<string, number | string>;
  trainingDate?: string;
  /** Hex SHA-256 of model.onnx; a mismatch refuses the model. */
  sha256?: string;
  /** Hex SHA-256 of each external-data file next to model.onnx, by file name. */
  externalData?: Record<string, string>;
  inputs?: ManifestTensor[];
  outputs?: ManifestTensor[];
  preprocessing?: unknown;
  labels?: string[];
  batching?: ManifestBatching;
  [key: string]: unknown;
}

const SHA256 = { type: 'string', pattern: '^[0-9a-fA-F]{64}$' };
const TENSOR = {
  type: 'object',
  required: ['name'],
  properties: {
    name: { type: 'string', minLength: 1 },
    dtype: { type: 'string' },
    shape: { type: 'array', items: { type: ['integer', 'string'] } },
    description: { type: 'string' },
  },
};

/** The JSON Schema model.json is checked against. */
export const MODEL_MANIFEST_SCHEMA = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    version: { type: ['string', 'integer'] },
    framework: { type: 'string' },
    description: { type: 'string' },
    task: { type: 'string' },
    metrics: { type: 'object', additionalProperties: { type: ['number', 'string'] } },
    trainingDate: { type: 'string' },
    sha256: SHA256,
    externalData: { type: 'object', additionalProperties: SHA256 },
    inputs: { type: 'array', items: TENSOR },
    outputs: { type: 'array', items: TENSOR },
    labels: { type: 'array', items: { type: 'string' } },
    batching: {
      type: 'object',
      additionalProperties: false,
      properties: {
        enabled: { type: 'boolean' },
        maxBatchSize: { type: 'integer', minimum: 1 },
        maxQueueDelayMs: { type: 'number', minimum: 0 },
        preferredBatchSizes: { type: 'array', items: { type: 'integer', minimum: 1 } },
        padding: { type: 'boolean' },
      },
    },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(MODEL_MANIFEST_SCHEMA);

function describe(errors: ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '(top)'} ${e.message ?? 'is invalid'}`).join('; ');
}

/** Reads and checks a model.json; throws a 422 NucleusError naming the file and what is wrong. */
export async function readModelManifest(path: string): Promise<ModelManifest> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new NucleusError(422, 'invalid_model_manifest', `${path} is not readable JSON: ${(err as Error).message}`);
  }
  if (!validate(parsed))
    throw new NucleusError(
      422,
      'invalid_model_manifest',
      `${path} is not a valid model.json: ${describe(validate.errors)}`,
    );
  return parsed as ModelManifest;
}

/** Refuses a model whose files do not hash to what model.json says (422 `checksum_mismatch`); `progress` gets one operation per file. */
export async function verifyChecksums(
  modelPath: string,
  manifest: ModelManifest,
  manifestPath: string,
  progress: () => Progress = () => noProgress,
): Promise<void> {
  const checks: Array<[string, string]> = [];
  if (manifest.sha256) checks.push([modelPath, manifest.sha256]);
  for (const [file, sum] of Object.entries(manifest.externalData ?? {}))
    checks.push([join(dirname(modelPath), file), sum]);
  for (const [file, expected] of checks) {
    let actual: string;
    try {
      actual = await sha256File(file, progress());
    } catch (err) {
      throw new NucleusError(
        422,
        'model_file_missing',
        `${basename(file)} listed in ${manifestPath} cannot be read: ${(err as Error).message}`,
      );
    }
    if (actual !== expected.toLowerCase()) {
      throw new NucleusError(
        422,
        'checksum_mismatch',
        `${file} has sha256 ${actual}, but ${manifestPath} says ${expected.toLowerCase()}: the file is corrupt or was replaced; refusing to load it`,
      );
    }
  }
}
