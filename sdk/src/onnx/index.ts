// @nucleus/sdk/onnx: build, read and write ONNX models in TypeScript.
export { attr, toAttribute, type AttributeInput, type AttributeType, type AttributeValue, type Int64 } from './attribute.js';
export {
  DTYPES,
  allocate,
  dtypeBits,
  dtypeFromCode,
  dtypeOfArray,
  dtypeToCode,
  elementCount,
  fromRawBytes,
  isDType,
  rawByteLength,
  storageLength,
  type DType,
  type DTypeArrayMap,
  type NumericArray,
  type TensorValues,
} from './dtype.js';
export {
  GraphBuilder,
  type GraphBuilderOptions,
  type InputRef,
  type NodeOptions,
  type ToModelOptions,
  type Value,
  type ValueRef,
} from './graph-builder.js';
export {
  emptyGraph,
  tensorType,
  type Dim,
  type OnnxFunction,
  type OnnxGraph,
  type OnnxNode,
  type OpsetImports,
  type SparseTensor,
  type TensorAnnotation,
  type ValueInfo,
  type ValueType,
} from './graph-types.js';
export { loadExternalData, loadModel, saveModel, type SaveModelOptions, type SavedModel } from './model-file.js';
export { DEFAULT_OPSET, OnnxModel, decodeModel, irVersionForOpset, type OnnxModelInit } from './onnx-model.js';
export { OpHelpers, type Operand, type WindowOptions } from './op-helpers.js';
export { bfloat16Bits, bfloat16FromBits, float16Bits, float16FromBits } from './float16.js';
export {
  createTensor,
  packInt4,
  tensorByteLength,
  tensorBytes,
  tensorToNumbers,
  unpackInt4,
  type ExternalDataRef,
  type OnnxTensor,
  type TensorInput,
} from './tensor.js';
