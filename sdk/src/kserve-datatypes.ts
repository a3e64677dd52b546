import type { TensorDataType } from './inference.js';

/** A tensor datatype as the Open Inference Protocol names it. */
export type KServeDatatype =
  | 'BOOL'
  | 'UINT8'
  | 'UINT16'
  | 'UINT32'
  | 'UINT64'
  | 'INT8'
  | 'INT16'
  | 'INT32'
  | 'INT64'
  | 'FP16'
  | 'FP32'
  | 'FP64'
  | 'BYTES';

const TO_KSERVE: Record<TensorDataType, KServeDatatype> = {
  bool: 'BOOL',
  uint8: 'UINT8',
  uint16: 'UINT16',
  uint32: 'UINT32',
  uint64: 'UINT64',
  int8: 'INT8',
  int16: 'INT16',
  int32: 'INT32',
  int64: 'INT64',
  float16: 'FP16',
  float32: 'FP32',
  float64: 'FP64',
};

const FROM_KSERVE = new Map<string, TensorDataType>(
  Object.entries(TO_KSERVE).map(([k, v]) => [v, k as TensorDataType]),
);

/** The protocol's name for an engine dtype (`float32` → `FP32`). */
export function kserveDatatype(dtype: TensorDataType): KServeDatatype {
  return TO_KSERVE[dtype];
}

/** The engine dtype for a protocol datatype, or undefined for one the engine does not serve (`BYTES`, unknown names). */
export function tensorDataType(datatype: string): TensorDataType | undefined {
  return FROM_KSERVE.get(datatype);
}

/** Every datatype the engine serves, for error messages. */
export const SUPPORTED_DATATYPES: readonly KServeDatatype[] = Object.values(TO_KSERVE);
