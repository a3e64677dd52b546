import type { ModelVersionInfo } from '@nucleus/sdk';
import { ReferenceProfile, type PredictionReference } from './reference-profile.js';
import type { Prediction, TabularInput } from './tabular-input.js';

interface Recording {
  rows: number[][];
  predictions: Prediction[];
}

/**
 * The reference profile of each model, by name: an uploaded one wins, then model.json's training statistics, then
 * the first `recordSize` rows (and predictions) the model was sent. Predictions are recorded for every model, so a
 * profile that declares none still gets a prediction reference.
 */
export class ProfileStore {
  private readonly uploaded = new Map<string, ReferenceProfile>();
  private readonly declared = new Map<string, ReferenceProfile | null>();
  private readonly recordings = new Map<string, Recording>();

  constructor(readonly recordSize: number) {}

  /** The profile requests to this model are compared with, or undefined while none is known or complete. */
  profile(info: ModelVersionInfo, input: TabularInput): ReferenceProfile | undefined {
    const profile =
      this.uploaded.get(info.name) ??
      this.fromMetadata(info, input) ??
      this.recordedProfile(info.name, input, this.recordSize);
    if (profile && !profile.predictions) {
      const predictions = this.recordedPredictions(info.name);
      if (predictions) profile.predictions = predictions;
    }
    return profile;
  }

  /** The profile for explanations: as {@link profile}, or the requests recorded so far (two at least). */
  background(info: ModelVersionInfo, input: TabularInput): ReferenceProfile | undefined {
    return this.profile(info, input) ?? this.recordedProfile(info.name, input, 2);
  }

  /** Replaces a model's reference with an uploaded one (a new model version keeps it: drop it to go back). */
  upload(model: string, profile: ReferenceProfile): void {
    this.uploaded.set(model, profile);
  }

  /** Drops an uploaded reference and what was recorded, so the model's reference is taken afresh. */
  reset(model: string): boolean {
    const had = this.uploaded.delete(model) || this.recordings.delete(model);
    this.recordings.delete(model);
    return had;
  }

  /** Keeps rows and predictions until `recordSize` of each are held. */
  record(model: string, rows: readonly (readonly (number | null)[])[], predictions: readonly Prediction[]): void {
    let r = this.recordings.get(model);
    if (!r) this.recordings.set(model, (r = { rows: [], predictions: [] }));
    for (const row of rows) {
      if (r.rows.length >= this.recordSize) break;
      if (row.every((v) => typeof v === 'number' && Number.isFinite(v))) r.rows.push(row as number[]);
    }
    for (const p of predictions) {
      if (r.predictions.length >= this.recordSize) break;
      r.predictions.push(p);
    }
  }

  /** Whether rows are still being recorded for this model. */
  recording(model: string): boolean {
    return (this.recordings.get(model)?.rows.length ?? 0) < this.recordSize;
  }

  private fromMetadata(info: ModelVersionInfo, input: TabularInput): ReferenceProfile | undefined {
    const key = `${info.name}\u0000${info.version}`;
    if (!this.declared.has(key)) {
      const names = Array.from({ length: input.width }, (_, j) => `f${j}`);
      this.declared.set(key, ReferenceProfile.fromMetadata(info.metadata, input.width, names) ?? null);
    }
    return this.declared.get(key) ?? undefined;
  }

  private recordedProfile(model: string, input: TabularInput, atLeast: number): ReferenceProfile | undefined {
    const r = this.recordings.get(model);
    if (!r || r.rows.length < atLeast) return undefined;
    const names = Array.from({ length: input.width }, (_, j) => `f${j}`);
    return ReferenceProfile.fromRows('recorded', r.rows, names, this.recordedPredictions(model));
  }

  private recordedPredictions(model: string): PredictionReference | undefined {
    const list = this.recordings.get(model)?.predictions ?? [];
    if (list.length < this.recordSize) return undefined;
    if (list.every((p) => p.kind === 'class')) {
      const classes = 1 + Math.max(...list.map((p) => (p.kind === 'class' ? p.index : 0)));
      const shares = new Array<number>(Math.max(2, classes)).fill(0);
      for (const p of list) if (p.kind === 'class') shares[p.index]! += 1 / list.length;
      return { kind: 'class', shares };
    }
    const values = list.flatMap((p) => (p.kind === 'value' && Number.isFinite(p.value) ? [p.value] : []));
    return { kind: 'value', sorted: Array.from(Float64Array.from(values).sort()) };
  }
}
