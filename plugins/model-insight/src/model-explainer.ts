import {
  badRequest,
  NucleusError,
  SeededRandom,
  type ExplainRequest,
  type Explainer,
  type Explanation,
  type InferenceService,
  type ModelVersionInfo,
} from '@nucleus/sdk';
import { kernelShap, type Evaluate } from './kernel-shap.js';
import { permutationImportance } from './permutation-importance.js';
import type { ProfileStore } from './profile-store.js';
import { rowsOf, tabularInput, tensorOf } from './tabular-input.js';

/** Limits and seeds of the explainer (from `plugin.model-insight`). */
export interface ExplainerOptions {
  maxFeatures: number;
  /** Background rows Kernel SHAP averages over, at most. */
  backgroundSize: number;
  maxCoalitions: number;
  /** Rows sent to the model in one run, at most. */
  maxRowsPerRun: number;
  permutationRepeats: number;
  /** Rows one request may ask to explain with Kernel SHAP. */
  maxExplainedRows: number;
  seed: number;
}

/**
 * Explains a tensor model's output for rows of its feature input: Kernel SHAP against a background from the
 * model's reference profile, or permutation importance over its reference rows. The perturbed rows run through the
 * inference service as batch tensors, `maxRowsPerRun` rows a run.
 */
export class ModelExplainer implements Explainer {
  readonly name = 'model-insight';

  constructor(
    private readonly service: () => InferenceService,
    private readonly profiles: ProfileStore,
    private readonly options: ExplainerOptions,
  ) {}

  async explain(request: ExplainRequest): Promise<Explanation> {
    const engine = this.service();
    const info = engine.get(request.model, request.version);
    const input = tabularInput(info, this.options.maxFeatures);
    const given = request.inputs[input.name];
    if (!given || Object.keys(request.inputs).length !== 1)
      throw badRequest(
        'invalid_inputs',
        `model '${info.name}' takes one input, '${input.name}' ([${['batch', ...input.rowShape].join(',')}])`,
        'inputs',
      );
    const rows = rowsOf(given, input.width);
    if (rows.length === 0 || rows.length * input.width !== given.data.length)
      throw badRequest(
        'invalid_shape',
        `input '${input.name}' must hold whole rows of ${input.width} values; got ${given.data.length}`,
        input.name,
      );
    const output = this.output(info, request.output);
    const method = request.method ?? 'kernel_shap';
    let runs = 0;
    const evaluate: Evaluate = async (batch) => {
      const out: number[][] = [];
      for (let start = 0; start < batch.length; start += this.options.maxRowsPerRun) {
        const part = batch.slice(start, start + this.options.maxRowsPerRun);
        runs++;
        const result = await engine.infer({
          model: info.name,
          version: info.version,
          inputs: { [input.name]: tensorOf(input, part) },
          outputs: [output.name],
          ...(request.signal && { signal: request.signal }),
          ...(request.requestId !== undefined && { requestId: request.requestId }),
        });
        const t = result.outputs[output.name]!;
        out.push(...rowsOf(t, t.data.length / part.length));
      }
      return out;
    };
    const profile = this.profiles.background(info, input);
    const names = profile?.names ?? Array.from({ length: input.width }, (_, j) => `f${j}`);
    const base = { model: info.name, version: info.version, output: output.name };

    if (method === 'permutation') {
      const { rows: reference, source } = this.referenceRows(profile, rows, info);
      const r = await permutationImportance(reference, evaluate, this.options.permutationRepeats, this.options.seed);
      const columns = this.columns(info, output.width);
      const importance = names
        .map((feature, j) => ({ feature, importance: r.importance[j]!, std: r.std[j]! }))
        .sort((a, b) => b.importance - a.importance);
      return { ...base, method, columns, importance, reference: source, runs, evaluatedRows: r.evaluatedRows };
    }

    if (rows.length > this.options.maxExplainedRows)
      throw badRequest(
        'too_many_rows',
        `Kernel SHAP explains at most ${this.options.maxExplainedRows} rows a request (plugin.model-insight.maxExplainedRows); got ${rows.length}`,
        input.name,
      );
    const background = profile?.background(this.options.backgroundSize);
    if (!background) throw noReference(info);
    const { results, evaluatedRows } = await kernelShap(rows, background, evaluate, {
      maxCoalitions: this.options.maxCoalitions,
      seed: this.options.seed,
    });
    return {
      ...base,
      method: 'kernel_shap',
      columns: this.columns(info, output.width),
      rows: results.map((r, n) => ({
        baseValue: r.baseValue,
        prediction: r.prediction,
        features: names.map((feature, j) => ({ feature, value: rows[n]![j]!, attributions: r.values[j]! })),
      })),
      reference: profile!.source,
      runs,
      evaluatedRows,
    };
  }

  /** The explained output: the one asked for, else the first floating-point one. */
  private output(info: ModelVersionInfo, name?: string): { name: string; width: number } {
    const floats = info.outputs.filter((t) => t.dtype === 'float32' || t.dtype === 'float64');
    const chosen = name !== undefined ? info.outputs.find((t) => t.name === name) : floats[0];
    if (!chosen || (chosen.dtype !== 'float32' && chosen.dtype !== 'float64'))
      throw badRequest(
        'not_explainable',
        name !== undefined
          ? `model '${info.name}' has no floating-point output named '${name}'; explainable outputs: ${floats.map((t) => t.name).join(', ') || 'none'}`
          : `model '${info.name}' has no floating-point output to explain`,
        'output',
      );
    const width = chosen.shape.slice(1).reduce((n, d) => n * Math.max(1, d), 1);
    return { name: chosen.name, width };
  }

  private columns(info: ModelVersionInfo, width: number): string[] {
    const labels = info.metadata.labels;
    if (Array.isArray(labels) && labels.length === width) return labels.map(String);
    return Array.from({ length: width }, (_, c) => String(c));
  }

  // Permutation needs rows that differ: the profile's own, else rows drawn from its declared means and stds, else
  // the request's rows when it gives several.
  private referenceRows(
    profile: ReturnType<ProfileStore['background']>,
    given: number[][],
    info: ModelVersionInfo,
  ): { rows: number[][]; source: Explanation['reference'] } {
    if (profile && profile.rows.length >= 2)
      return { rows: profile.background(this.options.backgroundSize), source: profile.source };
    if (profile) {
      const rng = new SeededRandom(this.options.seed);
      const rows = Array.from({ length: this.options.backgroundSize }, () =>
        profile.features.map((f) => f.mean + rng.normal(f.std)),
      );
      return { rows, source: profile.source };
    }
    if (given.length >= 2) return { rows: given, source: 'request' };
    throw noReference(info);
  }
}

function noReference(info: ModelVersionInfo): NucleusError {
  return new NucleusError(
    409,
    'no_reference',
    `model '${info.name}' has no reference profile yet: its model.json has no trainingStatistics (or standardising preprocessing), none was uploaded (POST /admin/models/${info.name}/reference) and too few requests were recorded; send several rows, or upload a reference`,
  );
}
