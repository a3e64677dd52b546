import {
  badRequest,
  definePlugin,
  ExtensionPoints,
  NucleusError,
  optionalService,
  ServiceRefs,
  type InferenceHookInput,
  type InferenceService,
  type TensorDataType,
} from '@nucleus/sdk';
import { FeatureEncoder, readPreprocessing } from './feature-encoder.js';

export {
  FeatureEncoder,
  readPreprocessing,
  type FeatureDeclaration,
  type FeaturePreprocessing,
} from './feature-encoder.js';

const KSERVE_DATATYPES: Partial<Record<TensorDataType, string>> = { float32: 'FP32', float64: 'FP64', float16: 'FP16' };

/**
 * Rewrites a request that carries `features` (one record) or `records` (a list) into the model's input tensor as
 * its model.json `preprocessing` section declares. A native body (it names `model`) gets `inputs: {name: {data,
 * shape}}`; a KServe v2 body gets `inputs: [{name, shape, datatype, data}]`. Other requests pass through untouched.
 */
export function encodeFeatures(input: InferenceHookInput, service: InferenceService): InferenceHookInput {
  const { features, records, ...rest } = input.body;
  if (features === undefined && records === undefined) return input;
  if (features !== undefined && records !== undefined)
    throw badRequest('invalid_body', 'give either features (one record) or records (a list), not both', 'features');
  if (rest.inputs !== undefined)
    throw badRequest('invalid_body', 'give either inputs or features/records, not both', 'features');
  const list = records !== undefined ? records : [features];
  if (!Array.isArray(list) || list.length === 0)
    throw badRequest('invalid_body', 'records must be a non-empty list of feature objects', 'records');
  const info = service.get(input.model, input.version);
  const label = `model '${info.name}' version '${info.version}'`;
  const preprocessing = readPreprocessing(info.metadata);
  if (!preprocessing)
    throw badRequest(
      'no_preprocessing',
      `${label} declares no feature preprocessing in its model.json; send inputs instead of features`,
      'features',
    );
  const { data, shape } = new FeatureEncoder(preprocessing, label).encode(list);
  const dtype = info.inputs.find((t) => t.name === preprocessing.input)?.dtype ?? 'float32';
  if (typeof rest.model === 'string')
    return { ...input, body: { ...rest, inputs: { [preprocessing.input]: { data, shape } } } };
  const datatype = KSERVE_DATATYPES[dtype];
  if (!datatype)
    throw badRequest(
      'no_preprocessing',
      `${label} takes ${dtype} for '${preprocessing.input}', which feature preprocessing cannot fill`,
      'features',
    );
  return { ...input, body: { ...rest, inputs: [{ name: preprocessing.input, shape, datatype, data }] } };
}

/** The features plugin: a `preInference` hook that encodes named features for models that declare preprocessing. */
export default definePlugin({
  deps: { inference: optionalService(ServiceRefs.inference) },
  activate(ctx, { inference }) {
    const service = (): InferenceService => {
      if (!inference)
        throw new NucleusError(503, 'engine_unavailable', 'the inference engine is not running in this server');
      return inference;
    };
    ctx.contribute(
      ExtensionPoints.hooks,
      { preInference: (input: InferenceHookInput) => encodeFeatures(input, service()) },
      { name: 'features' },
    );
  },
});
