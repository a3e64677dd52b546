import { badRequest } from '@nucleus/sdk';
import { Ajv } from 'ajv';
import { binShares, ksOneSample, ksTwoSample, NORMAL_DECILES, normalCdf, quantileEdges } from './drift-statistics.js';

/** Where a reference came from: model.json training statistics, the first requests seen, or an upload. */
export type ReferenceSource = 'training' | 'recorded' | 'uploaded';

/** One feature of a reference: a sample of it where rows are known, else its mean and std (taken as normal). */
export interface FeatureReference {
  name: string;
  mean: number;
  std: number;
  min?: number;
  max?: number;
  /** Ascending values, where the reference holds rows. */
  sorted?: number[];
}

/** The predictions a reference expects: shares of each class, or a sample of predicted values. */
export type PredictionReference = { kind: 'class'; shares: number[] } | { kind: 'value'; sorted: number[] };

/** model.json's `trainingStatistics` section, and the body of an uploaded reference. */
export interface ReferenceDocument {
  features?: Array<{ name: string; mean: number; std: number; min?: number; max?: number }>;
  rows?: number[][];
  predictions?: { classShares?: number[]; values?: number[] };
}

const REFERENCE_SCHEMA = {
  type: 'object',
  properties: {
    features: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['name', 'mean', 'std'],
        properties: {
          name: { type: 'string', minLength: 1 },
          mean: { type: 'number' },
          std: { type: 'number', minimum: 0 },
          min: { type: 'number' },
          max: { type: 'number' },
        },
      },
    },
    rows: { type: 'array', minItems: 2, maxItems: 100_000, items: { type: 'array', items: { type: 'number' } } },
    predictions: {
      type: 'object',
      properties: {
        classShares: { type: 'array', minItems: 2, items: { type: 'number', minimum: 0 } },
        values: { type: 'array', minItems: 2, items: { type: 'number' } },
      },
    },
  },
  anyOf: [{ required: ['features'] }, { required: ['rows'] }],
} as const;

const validate = new Ajv({ strict: false, allErrors: false }).compile<ReferenceDocument>(REFERENCE_SCHEMA);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * What a model's inputs (and predictions) look like when all is well: the background Kernel SHAP averages over,
 * the rows permutation importance shuffles, and what drift is measured against.
 */
export class ReferenceProfile {
  private readonly edgeCache = new Map<number, number[]>();

  constructor(
    readonly source: ReferenceSource,
    readonly features: readonly FeatureReference[],
    /** Reference rows, where known (a sample, or the first requests). */
    readonly rows: readonly number[][],
    public predictions?: PredictionReference,
  ) {}

  /** A profile of rows (`width` values each), named by `names` or `f0…`. */
  static fromRows(
    source: ReferenceSource,
    rows: readonly number[][],
    names: readonly string[],
    predictions?: PredictionReference,
  ): ReferenceProfile {
    const features = names.map((name, j) => {
      const column = rows.map((r) => r[j]!).filter(Number.isFinite);
      const sorted = Float64Array.from(column).sort();
      const mean = column.reduce((s, v) => s + v, 0) / Math.max(1, column.length);
      const variance = column.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, column.length);
      return {
        name,
        mean,
        std: Math.sqrt(variance),
        ...(sorted.length ? { min: sorted[0]!, max: sorted[sorted.length - 1]! } : {}),
        sorted: Array.from(sorted),
      };
    });
    return new ReferenceProfile(
      source,
      features,
      rows.map((r) => [...r]),
      predictions,
    );
  }

  /**
   * A profile from a reference document (model.json `trainingStatistics`, or an upload) for an input `width` values
   * wide; 400 `invalid_reference` saying what does not fit.
   */
  static fromDocument(
    source: ReferenceSource,
    doc: unknown,
    width: number,
    defaultNames: readonly string[],
  ): ReferenceProfile {
    if (!validate(doc)) {
      const e = validate.errors?.[0];
      const where = e?.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : 'reference';
      throw badRequest(
        'invalid_reference',
        `${where} ${e?.message ?? 'is invalid'}; give features [{name, mean, std, min?, max?}] and/or rows [[...]]`,
        where,
      );
    }
    if (doc.features && doc.features.length !== width)
      throw badRequest(
        'invalid_reference',
        `the reference describes ${doc.features.length} features, but the model's input holds ${width} per row`,
        'features',
      );
    const bad = doc.rows?.findIndex((r) => r.length !== width) ?? -1;
    if (bad >= 0)
      throw badRequest(
        'invalid_reference',
        `rows[${bad}] holds ${doc.rows![bad]!.length} values, but the model's input holds ${width} per row`,
        `rows.${bad}`,
      );
    const p = doc.predictions;
    const predictions: PredictionReference | undefined = p?.classShares
      ? { kind: 'class', shares: normalise(p.classShares) }
      : p?.values
        ? { kind: 'value', sorted: Array.from(Float64Array.from(p.values).sort()) }
        : undefined;
    const names = doc.features?.map((f) => f.name) ?? defaultNames;
    if (doc.rows) {
      const profile = ReferenceProfile.fromRows(source, doc.rows, names, predictions);
      // Declared bounds are what the data may hold; a sample's extremes are only what it happened to hold.
      if (!doc.features) return profile;
      const features = profile.features.map((f, j) => ({ ...f, ...bounds(doc.features![j]!) }));
      return new ReferenceProfile(source, features, profile.rows, predictions);
    }
    return new ReferenceProfile(
      source,
      doc.features!.map((f) => ({ name: f.name, mean: f.mean, std: f.std, ...bounds(f) })),
      [],
      predictions,
    );
  }

  /**
   * The profile model.json gives an input `width` values wide: its `trainingStatistics` section, or else a
   * `preprocessing` section that standardises every feature (so each column has mean 0 and std 1); undefined when
   * it has neither.
   */
  static fromMetadata(
    metadata: Record<string, unknown>,
    width: number,
    defaultNames: readonly string[],
  ): ReferenceProfile | undefined {
    if (metadata.trainingStatistics !== undefined)
      return ReferenceProfile.fromDocument('training', metadata.trainingStatistics, width, defaultNames);
    const p = metadata.preprocessing;
    if (!isRecord(p) || !Array.isArray(p.features) || p.features.length !== width) return undefined;
    const standardised = p.features.every(
      (f) => isRecord(f) && typeof f.name === 'string' && typeof f.mean === 'number' && typeof f.std === 'number',
    );
    if (!standardised) return undefined;
    const features = (p.features as Array<{ name: string }>).map((f) => ({ name: f.name, mean: 0, std: 1 }));
    return new ReferenceProfile('training', features, []);
  }

  /** Feature names in input order. */
  get names(): string[] {
    return this.features.map((f) => f.name);
  }

  /** Up to `max` background rows: the reference rows evenly spaced, or the one row of feature means. */
  background(max: number): number[][] {
    if (this.rows.length === 0) return [this.features.map((f) => f.mean)];
    if (this.rows.length <= max) return this.rows.map((r) => [...r]);
    const step = this.rows.length / max;
    return Array.from({ length: max }, (_, i) => [...this.rows[Math.floor(i * step)]!]);
  }

  /** The inner edges of feature `j`'s ten reference bins. */
  edges(j: number): number[] {
    let edges = this.edgeCache.get(j);
    if (!edges) {
      const f = this.features[j]!;
      edges = f.sorted?.length ? quantileEdges(f.sorted) : NORMAL_DECILES.map((z) => f.mean + z * f.std);
      if (!f.sorted?.length && f.std === 0) edges = [f.mean];
      this.edgeCache.set(j, edges);
    }
    return edges;
  }

  /** The reference's share in each of feature `j`'s bins. */
  expectedShares(j: number): number[] {
    const f = this.features[j]!;
    if (f.sorted?.length) return binShares(f.sorted, this.edges(j));
    if (f.std === 0) return [1, 0];
    return new Array<number>(this.edges(j).length + 1).fill(1 / (this.edges(j).length + 1));
  }

  /** KS statistic of an ascending live sample of feature `j` against the reference. */
  ks(j: number, sorted: readonly number[]): number {
    const f = this.features[j]!;
    if (f.sorted?.length) return ksTwoSample(f.sorted, sorted);
    if (f.std === 0) return ksOneSample(sorted, (x) => (x < f.mean ? 0 : 1));
    return ksOneSample(sorted, (x) => normalCdf((x - f.mean) / f.std));
  }
}

function bounds(f: { min?: number; max?: number }): { min?: number; max?: number } {
  return { ...(f.min !== undefined && { min: f.min }), ...(f.max !== undefined && { max: f.max }) };
}

function normalise(shares: readonly number[]): number[] {
  const sum = shares.reduce((s, v) => s + v, 0);
  return shares.map((v) => (sum > 0 ? v / sum : 1 / shares.length));
}
