// @nucleus/sdk/onnx: build, read and write ONNX models in TypeScript.
export { attr, toAttribute, type AttributeInput } from './attribute.js';
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
export { GraphBuilder, type GraphBuilderOptions, type ToModelOptions } from './graph-builder.js';
export type { InputRef, NodeEmitter, NodeOptions, Value, ValueRef } from './node-emitter.js';
export {
  emptyGraph,
  tensorType,
  type AttributeType,
  type AttributeValue,
  type Dim,
  type Int64,
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
