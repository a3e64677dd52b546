/**
 * The protocol's messages as @grpc/proto-loader hands them over (field names as in the .proto, 64-bit integers as
 * decimal strings, bytes as Buffers, every repeated field an array) and as the server writes them back.
 */

/** A request or response parameter: one of its fields is set, named by `parameter_choice`. */
export interface InferParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';
  bool_param?: boolean;
  int64_param?: string | number;
  string_param?: string;
  double_param?: number;
  uint64_param?: string | number;
}

/** Typed tensor elements, flattened row-major. */
export interface InferTensorContents {
  bool_contents?: boolean[];
  int_contents?: number[];
  int64_contents?: Array<string | number>;
  uint_contents?: number[];
  uint64_contents?: Array<string | number>;
  fp32_contents?: number[];
  fp64_contents?: number[];
  bytes_contents?: Uint8Array[];
}

export interface InferInputTensor {
  name: string;
  datatype: string;
  shape: Array<string | number>;
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents | null;
}

export interface ModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, InferParameter>;
  inputs: InferInputTensor[];
  outputs: Array<{ name: string; parameters?: Record<string, InferParameter> }>;
  raw_input_contents: Uint8Array[];
}

export interface InferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: Record<string, InferParameter>;
  contents?: InferTensorContents;
}

export interface ModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters?: Record<string, InferParameter>;
  outputs: InferOutputTensor[];
  raw_output_contents?: Uint8Array[];
}

/** The value a parameter holds, whichever field carries it (64-bit integers as numbers). */
export function parameterValue(parameter: InferParameter): unknown {
  const field = parameter.parameter_choice;
  if (field === undefined) return undefined;
  const value = parameter[field];
  return field === 'int64_param' || field === 'uint64_param' ? Number(value) : value;
}
