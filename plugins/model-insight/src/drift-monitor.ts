import type { DriftReport, EventBus, FeatureDrift, InferenceService, ModelVersionInfo } from '@nucleus/sdk';
import { binShares, psi, quantileEdges } from './drift-statistics.js';
import type { ProfileStore } from './profile-store.js';
import type { PredictionReference } from './reference-profile.js';
import {
  observedRows,
  predictionsOf,
  tabularInput,
  type Observed,
  type Prediction,
  type TabularInput,
} from './tabular-input.js';

/** How the drift monitor windows and judges live traffic (from `plugin.model-insight.drift`). */
export interface DriftOptions {
  /** Rows in each model's sliding window. */
  windowSize: number;
  /** Rows the window must hold before drift is measured. */
  minSamples: number;
  maxFeatures: number;
}

/** Data-quality counts since the server started. */
export interface QualityTotals {
  rows: number;
  missing: number;
  nan: number;
  outOfRange: number;
}

interface ModelWindow {
  input: TabularInput;
  rows: Observed[][];
  predictions: Prediction[];
  /** Rows added since the last evaluation. */
  fresh: number;
  totals: QualityTotals;
  latest?: DriftReport;
}

/**
 * Keeps a sliding window of each tensor model's live input rows and predictions (fed by an `aroundInference`
 * hook), and on each evaluation compares every window holding new rows with the model's reference profile:
 * PSI and KS per feature, PSI of the predictions, and missing, NaN and out-of-range counts. Each comparison is
 * emitted as a `drift.report` event, which metrics, stats and alerts read.
 */
export class DriftMonitor {
  private readonly windows = new Map<string, ModelWindow>();
  private readonly inputs = new Map<string, TabularInput | null>();

  constructor(
    private readonly service: () => InferenceService,
    private readonly profiles: ProfileStore,
    private readonly events: EventBus,
    private readonly options: DriftOptions,
  ) {}

  /** Takes the rows of one answered request: the reference records them, or the window does once there is one. */
  observe(
    model: string,
    version: string | undefined,
    body: Record<string, unknown>,
    answer: Record<string, unknown>,
  ): void {
    const engine = this.service();
    // The version's name, signature and metadata are all it reads: not the live counters `get` builds.
    const info = engine.describe?.(model, version) ?? engine.get(model, version);
    const key = `${info.name}\u0000${info.version}`;
    if (!this.inputs.has(key)) {
      try {
        this.inputs.set(key, tabularInput(info, this.options.maxFeatures));
      } catch {
        this.inputs.set(key, null);
      }
    }
    const input = this.inputs.get(key);
    if (!input) return;
    const rows = observedRows(body, input);
    if (!rows) return;
    const predictions = predictionsOf(answer);
    const referenced = this.profiles.profile(info, input) !== undefined;
    this.profiles.record(info.name, rows, predictions);
    if (!referenced) return;
    let w = this.windows.get(info.name);
    if (!w || w.input.width !== input.width) {
      w = { input, rows: [], predictions: [], fresh: 0, totals: { rows: 0, missing: 0, nan: 0, outOfRange: 0 } };
      this.windows.set(info.name, w);
    }
    for (const row of rows) w.rows.push(row);
    for (const p of predictions) w.predictions.push(p);
    w.fresh += rows.length;
    w.totals.rows += rows.length;
    // Cut back to the window once it holds twice as many: a cut per request moved the whole window each time.
    if (w.rows.length > 2 * this.options.windowSize || w.predictions.length > 2 * this.options.windowSize) this.trim(w);
  }

  // The window's last `windowSize` rows and predictions: what evaluate and status read.
  private trim(w: ModelWindow): void {
    const size = this.options.windowSize;
    if (w.rows.length > size) w.rows.splice(0, w.rows.length - size);
    if (w.predictions.length > size) w.predictions.splice(0, w.predictions.length - size);
  }

  /** Measures every window with new rows and enough of them; emits and returns the reports. */
  evaluate(now = Date.now()): DriftReport[] {
    const reports: DriftReport[] = [];
    for (const [model, w] of this.windows) {
      this.trim(w);
      if (w.fresh === 0 || w.rows.length < this.options.minSamples) continue;
      let info: ModelVersionInfo;
      try {
        info = this.service().get(model);
      } catch {
        this.windows.delete(model);
        continue;
      }
      const profile = this.profiles.profile(info, w.input);
      if (!profile || profile.features.length !== w.input.width) continue;
      const freshRows = w.rows.slice(-Math.min(w.fresh, w.rows.length));
      w.fresh = 0;
      const features: FeatureDrift[] = profile.features.map((f, j) => {
        let missing = 0;
        let nan = 0;
        let outOfRange = 0;
        const finite: number[] = [];
        for (const row of w.rows) {
          const v = row[j];
          if (v === null || v === undefined) missing++;
          else if (!Number.isFinite(v)) nan++;
          else {
            finite.push(v);
            if ((f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max)) outOfRange++;
          }
        }
        for (const row of freshRows) {
          const v = row[j];
          if (v === null || v === undefined) w.totals.missing++;
          else if (!Number.isFinite(v)) w.totals.nan++;
          else if ((f.min !== undefined && v < f.min) || (f.max !== undefined && v > f.max)) w.totals.outOfRange++;
        }
        const sorted = Array.from(Float64Array.from(finite).sort());
        return {
          name: f.name,
          psi: round(psi(profile.expectedShares(j), binShares(sorted, profile.edges(j)))),
          ks: round(profile.ks(j, sorted)),
          missing,
          nan,
          outOfRange,
        };
      });
      const predictionPsi = this.predictionPsi(profile.predictions, w.predictions);
      const report: DriftReport = {
        model,
        samples: w.rows.length,
        reference: profile.source,
        features,
        maxPsi: Math.max(0, ...features.map((f) => f.psi)),
        maxKs: Math.max(0, ...features.map((f) => f.ks)),
        ...(predictionPsi !== undefined && { predictionPsi: round(predictionPsi) }),
        at: new Date(now).toISOString(),
      };
      w.latest = report;
      reports.push(report);
      this.events.emit('drift.report', report);
    }
    return reports;
  }

  /** A model's latest report and quality totals, or undefined when no window is kept for it. */
  status(model: string): { window: number; latest?: DriftReport; totals: QualityTotals } | undefined {
    const w = this.windows.get(model);
    if (!w) return undefined;
    this.trim(w);
    return { window: w.rows.length, ...(w.latest && { latest: w.latest }), totals: { ...w.totals } };
  }

  /** The models a window is kept for. */
  models(): string[] {
    return [...this.windows.keys()];
  }

  /** Forgets a model's window (its reference changed). */
  reset(model: string): void {
    this.windows.delete(model);
  }

  private predictionPsi(reference: PredictionReference | undefined, live: Prediction[]): number | undefined {
    if (!reference || live.length === 0) return undefined;
    if (reference.kind === 'class') {
      const classes = live.flatMap((p) => (p.kind === 'class' ? [p.index] : []));
      if (classes.length === 0) return undefined;
      const width = Math.max(reference.shares.length, 1 + Math.max(...classes));
      const actual = new Array<number>(width).fill(0);
      for (const c of classes) actual[c]! += 1 / classes.length;
      const expected = Array.from({ length: width }, (_, c) => reference.shares[c] ?? 0);
      return psi(expected, actual);
    }
    const values = live.flatMap((p) => (p.kind === 'value' && Number.isFinite(p.value) ? [p.value] : []));
    if (values.length === 0 || reference.sorted.length === 0) return undefined;
    const edges = quantileEdges(reference.sorted);
    return psi(binShares(reference.sorted, edges), binShares(values, edges));
  }
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}
