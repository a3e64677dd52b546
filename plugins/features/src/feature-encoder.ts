import { badRequest } from '@nucleus/sdk';

/** One declared feature: standardised (`mean`/`std`), one-hot (`vocabulary`) or passed through; `default` fills a missing value. */
export interface FeatureDeclaration {
  name: string;
  mean?: number;
  std?: number;
  vocabulary?: Array<string | number | boolean>;
  default?: string | number | boolean;
}

/** model.json's `preprocessing` section: which input the encoded vector feeds and its features, in order. */
export interface FeaturePreprocessing {
  type?: string;
  input: string;
  features: FeatureDeclaration[];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The `preprocessing` section of a model's metadata when it declares features, else undefined. */
export function readPreprocessing(metadata: Record<string, unknown>): FeaturePreprocessing | undefined {
  const p = metadata.preprocessing;
  if (!isRecord(p) || typeof p.input !== 'string' || !Array.isArray(p.features)) return undefined;
  if (!p.features.every((f) => isRecord(f) && typeof f.name === 'string')) return undefined;
  return p as unknown as FeaturePreprocessing;
}

/**
 * Encodes named feature records into one row-major matrix (`[records, width]`) following a declaration:
 * numbers are standardised with the declared mean and std, categories become one-hot slots of their vocabulary,
 * missing (or null) values take the declared default. Unknown names, missing values without a default, values of
 * the wrong kind and categories outside the vocabulary are 400s naming the feature.
 */
export class FeatureEncoder {
  /** Values per record. */
  readonly width: number;

  constructor(
    readonly preprocessing: FeaturePreprocessing,
    private readonly label: string,
  ) {
    this.width = preprocessing.features.reduce((n, f) => n + (f.vocabulary ? f.vocabulary.length : 1), 0);
  }

  /** The encoded rows, flat, and their shape. */
  encode(records: readonly unknown[]): { data: number[]; shape: [number, number] } {
    const known = new Set(this.preprocessing.features.map((f) => f.name));
    const data: number[] = [];
    records.forEach((record, r) => {
      const where = records.length > 1 ? ` (record ${r})` : '';
      if (!isRecord(record))
        throw badRequest('invalid_features', `features${where} must be an object of name: value`, 'features');
      const unknown = Object.keys(record).filter((k) => !known.has(k));
      if (unknown.length > 0) {
        throw badRequest(
          'unknown_feature',
          `${this.label} has no feature${unknown.length > 1 ? 's' : ''} named ${unknown.map((u) => `'${u}'`).join(', ')}${where}; its features are ${[...known].join(', ')}`,
          unknown[0],
        );
      }
      for (const f of this.preprocessing.features) this.#encodeOne(f, record[f.name], where, data);
    });
    return { data, shape: [records.length, this.width] };
  }

  #encodeOne(f: FeatureDeclaration, given: unknown, where: string, out: number[]): void {
    const value = given === undefined || given === null ? f.default : given;
    if (value === undefined)
      throw badRequest(
        'missing_feature',
        `feature '${f.name}'${where} is missing and ${this.label} declares no default for it`,
        f.name,
      );
    if (f.vocabulary) {
      const slot = f.vocabulary.indexOf(value as string | number | boolean);
      if (slot < 0) {
        throw badRequest(
          'invalid_feature',
          `feature '${f.name}'${where} is ${JSON.stringify(value)}, which is not one of ${f.vocabulary.map((v) => JSON.stringify(v)).join(', ')}`,
          f.name,
        );
      }
      for (let i = 0; i < f.vocabulary.length; i++) out.push(i === slot ? 1 : 0);
      return;
    }
    const x = typeof value === 'boolean' ? Number(value) : value;
    if (typeof x !== 'number' || !Number.isFinite(x))
      throw badRequest(
        'invalid_feature',
        `feature '${f.name}'${where} is ${JSON.stringify(value)}, but it needs a number`,
        f.name,
      );
    out.push(f.mean !== undefined && f.std !== undefined && f.std !== 0 ? (x - f.mean) / f.std : x);
  }
}
