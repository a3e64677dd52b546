import {
  badRequest,
  NucleusError,
  type ExplanationMethod,
  type GenerationService,
  type InferenceService,
  type RouteContribution,
  type RouteContext,
  type Tensor,
} from '@nucleus/sdk';
import type { DriftMonitor } from './drift-monitor.js';
import type { ModelExplainer } from './model-explainer.js';
import type { ProfileStore } from './profile-store.js';
import { ReferenceProfile } from './reference-profile.js';
import { tabularInput, type TabularInput } from './tabular-input.js';

const METHODS: readonly ExplanationMethod[] = ['kernel_shap', 'permutation'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function flatNumbers(value: unknown, name: string, out: number[] = []): number[] {
  if (Array.isArray(value)) for (const v of value) flatNumbers(v, name, out);
  else if (typeof value === 'number' && Number.isFinite(value)) out.push(value);
  else
    throw badRequest(
      'invalid_tensor_data',
      `input '${name}' holds ${JSON.stringify(value)}; explanations take finite numbers`,
      name,
    );
  return out;
}

/** The explained input from a v2 body (`inputs: [{name, shape, data}]`) or a native one (`inputs: {name: rows}`). */
export function explainedTensor(body: Record<string, unknown>, input: TabularInput): Tensor {
  const inputs = body.inputs;
  let data: unknown;
  if (Array.isArray(inputs)) data = inputs.find((t) => isRecord(t) && t.name === input.name)?.data;
  else if (isRecord(inputs)) {
    const v = inputs[input.name];
    data = isRecord(v) ? v.data : v;
  } else throw badRequest('invalid_body', `give inputs: [{name: '${input.name}', shape, datatype, data}]`, 'inputs');
  if (data === undefined)
    throw badRequest('invalid_body', `inputs holds no '${input.name}', the model's feature input`, 'inputs');
  const values = flatNumbers(data, input.name);
  if (values.length === 0 || values.length % input.width !== 0)
    throw badRequest(
      'invalid_shape',
      `input '${input.name}' must hold whole rows of ${input.width} values ([batch,${input.rowShape.join(',')}]); got ${values.length} values`,
      input.name,
    );
  const rows = values.length / input.width;
  const data32 = input.dtype === 'float64' ? Float64Array.from(values) : Float32Array.from(values);
  return { dtype: input.dtype, shape: [rows, ...input.rowShape], data: data32 };
}

/**
 * The plugin's HTTP surface: `POST /v2/models/:name/explain` (and per version), `GET /v2/models/:name/drift`,
 * `GET /server/drift`, and the admin routes that upload or drop a model's reference profile.
 */
export function insightRoutes(
  service: () => InferenceService,
  generation: () => GenerationService | undefined,
  explainer: ModelExplainer,
  monitor: DriftMonitor,
  profiles: ProfileStore,
  maxFeatures: number,
): RouteContribution[] {
  const known = (name: string) => {
    if (
      generation()
        ?.list()
        .some((m) => m.name === name)
    )
      throw badRequest(
        'not_explainable',
        `model '${name}' is a generative model (LLM or embedding); explanations and drift cover tensor models`,
      );
    return service().model(name);
  };
  const explain = async (ctx: RouteContext) => {
    const name = ctx.params.name!;
    known(name);
    const info = service().get(name, ctx.params.version);
    const input = tabularInput(info, maxFeatures);
    const body = (ctx.request as { body?: unknown }).body;
    if (!isRecord(body)) throw badRequest('invalid_body', 'the body must be a JSON object with inputs');
    const parameters = isRecord(body.parameters) ? body.parameters : {};
    const method = body.method ?? parameters.method ?? 'kernel_shap';
    if (!METHODS.includes(method as ExplanationMethod))
      throw badRequest(
        'invalid_method',
        `method must be one of ${METHODS.join(', ')}; got ${JSON.stringify(method)}`,
        'method',
      );
    const output = body.output ?? parameters.output;
    if (output !== undefined && typeof output !== 'string')
      throw badRequest('invalid_body', 'output must name one of the model outputs', 'output');
    return explainer.explain({
      model: info.name,
      version: info.version,
      inputs: { [input.name]: explainedTensor(body, input) },
      method: method as ExplanationMethod,
      ...(output !== undefined && { output }),
    });
  };
  const drift = (ctx: RouteContext) => {
    const name = ctx.params.name!;
    known(name);
    const info = service().get(name);
    const input = tabularInput(info, maxFeatures);
    const profile = profiles.profile(info, input);
    const status = monitor.status(info.name);
    return {
      model: info.name,
      reference: profile
        ? {
            source: profile.source,
            features: profile.features.map((f) => ({
              name: f.name,
              mean: f.mean,
              std: f.std,
              ...(f.min !== undefined && { min: f.min }),
              ...(f.max !== undefined && { max: f.max }),
            })),
            ...(profile.predictions && { predictions: profile.predictions.kind }),
          }
        : { source: 'none', recording: profiles.recording(info.name) },
      window: status?.window ?? 0,
      ...(status?.latest && { latest: status.latest }),
      totals: status?.totals ?? { rows: 0, missing: 0, nan: 0, outOfRange: 0 },
    };
  };
  return [
    { method: 'POST', path: '/v2/models/:name/explain', handler: explain },
    { method: 'POST', path: '/v2/models/:name/versions/:version/explain', handler: explain },
    { method: 'GET', path: '/v2/models/:name/drift', handler: drift },
    {
      method: 'GET',
      path: '/server/drift',
      handler: () => ({
        models: monitor.models().map((model) => ({ model, ...monitor.status(model) })),
      }),
    },
    {
      method: 'POST',
      path: '/admin/models/:name/reference',
      access: 'admin',
      handler: (ctx) => {
        const name = ctx.params.name!;
        known(name);
        const info = service().get(name);
        const input = tabularInput(info, maxFeatures);
        const names = Array.from({ length: input.width }, (_, j) => `f${j}`);
        const profile = ReferenceProfile.fromDocument(
          'uploaded',
          (ctx.request as { body?: unknown }).body,
          input.width,
          names,
        );
        profiles.upload(info.name, profile);
        monitor.reset(info.name);
        return { model: info.name, source: 'uploaded', features: profile.names, rows: profile.rows.length };
      },
    },
    {
      method: 'DELETE',
      path: '/admin/models/:name/reference',
      access: 'admin',
      handler: (ctx) => {
        const name = ctx.params.name!;
        known(name);
        if (!profiles.reset(name))
          throw new NucleusError(404, 'no_reference', `model '${name}' has no uploaded or recorded reference to drop`);
        monitor.reset(name);
        return { model: name, dropped: true };
      },
    },
  ];
}
