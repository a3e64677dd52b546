import type { DType } from './dtype.js';
import type { OnnxTensor } from './tensor.js';

/** A 64-bit integer: a number where it is exact, a bigint beyond 2^53. */
export type Int64 = number | bigint;

/** A node attribute, tagged with its ONNX attribute type. */
export type AttributeValue = (
  | { type: 'float'; value: number }
  | { type: 'int'; value: Int64 }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: OnnxTensor }
  | { type: 'sparseTensor'; value: SparseTensor }
  | { type: 'graph'; value: OnnxGraph }
  | { type: 'typeProto'; value: ValueType }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: Int64[] }
  | { type: 'strings'; value: string[] }
  | { type: 'tensors'; value: OnnxTensor[] }
  | { type: 'sparseTensors'; value: SparseTensor[] }
  | { type: 'graphs'; value: OnnxGraph[] }
  | { type: 'typeProtos'; value: ValueType[] }
) & {
  /** Inside a function body: take the value from this attribute of the calling node. */
  refAttrName?: string;
  docString?: string;
};

/** The ONNX attribute type names. */
export type AttributeType = AttributeValue['type'];

/** One dimension of a declared shape: a fixed size, a symbolic name (`dim_param`, e.g. `'batch'`), or `null` for unknown. */
export type Dim = number | string | null;

/** The type of a graph value: a tensor (the usual case) or one of ONNX's container types. */
export type ValueType =
  | { kind: 'tensor'; dtype: DType /** Omitted: rank unknown. */; shape?: Dim[]; denotation?: string }
  | { kind: 'sparseTensor'; dtype: DType; shape?: Dim[]; denotation?: string }
  | { kind: 'sequence'; elem: ValueType; denotation?: string }
  | { kind: 'map'; keyType: DType; value: ValueType; denotation?: string }
  | { kind: 'optional'; elem: ValueType; denotation?: string }
  | { kind: 'opaque'; domain: string; name: string; denotation?: string };

/** A named, typed graph value (a graph input, output or `value_info` entry). */
export interface ValueInfo {
  name: string;
  /** Omitted where the model leaves the type to inference. */
  type?: ValueType;
  docString?: string;
}

/** One operator invocation in a graph. */
export interface OnnxNode {
  name: string;
  opType: string;
  /** `''` is the default ONNX domain (`ai.onnx`). */
  domain: string;
  /** Input value names; `''` marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
  docString?: string;
  /** Selects one of several local functions with the same name (IR 10). */
  overload?: string;
}

/** A sparse tensor in COO form. */
export interface SparseTensor {
  /** 1-D values; its name is the sparse tensor's name. */
  values: OnnxTensor;
  /** int64 indices, `[nnz]` (linearised) or `[nnz, rank]`. */
  indices: OnnxTensor;
  dims: number[];
}

/** Which tensors hold the quantization parameters of a tensor (`GraphProto.quantization_annotation`). */
export interface TensorAnnotation {
  tensorName: string;
  quantParameterTensorNames: Record<string, string>;
}

/** An ONNX graph: nodes in topological order, its inputs, outputs and constant weights. */
export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: OnnxTensor[];
  sparseInitializers: SparseTensor[];
  /** Types of intermediate values, where known. */
  valueInfo: ValueInfo[];
  quantizationAnnotations: TensorAnnotation[];
  docString?: string;
  metadataProps?: Record<string, string>;
}

/** Operator set versions by domain (`''` is the default ONNX domain). */
export type OpsetImports = Record<string, number>;

/** A model-local function (`FunctionProto`). */
export interface OnnxFunction {
  name: string;
  domain: string;
  overload?: string;
  inputs: string[];
  outputs: string[];
  /** Attributes without defaults. */
  attributes: string[];
  /** Attributes with defaults. */
  attributeDefaults: Record<string, AttributeValue>;
  nodes: OnnxNode[];
  opsets: OpsetImports;
  valueInfo: ValueInfo[];
  docString?: string;
}

/** An empty graph with every list present, to fill in. */
export function emptyGraph(name: string): OnnxGraph {
  return {
    name,
    nodes: [],
    inputs: [],
    outputs: [],
    initializers: [],
    sparseInitializers: [],
    valueInfo: [],
    quantizationAnnotations: [],
  };
}

/** A tensor value type with the given element type and shape. */
export function tensorType(dtype: DType, shape?: readonly Dim[]): ValueType {
  return shape === undefined ? { kind: 'tensor', dtype } : { kind: 'tensor', dtype, shape: [...shape] };
}
