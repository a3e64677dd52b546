// The ggml tensor types: their numbers and names, and the block layout of each type this plugin reads.
import { GGML_BLOCK_LAYOUTS, type GgmlBlockLayout } from './ggml-block-layouts.js';

export type { GgmlBlockLayout } from './ggml-block-layouts.js';

/** ggml tensor types by number (ggml.h `enum ggml_type`), for reading and for naming unsupported ones. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(GGML_BLOCK_LAYOUTS).map(([type, layout]) => [type, layout.name]),
);

/** The numbers of the ggml types this plugin reads. */
export const GgmlType = {
  F32: 0,
  F16: 1,
  Q4_0: 2,
  Q4_1: 3,
  Q5_0: 6,
  Q5_1: 7,
  Q8_0: 8,
  Q2_K: 10,
  Q3_K: 11,
  Q4_K: 12,
  Q5_K: 13,
  Q6_K: 14,
  BF16: 30,
} as const;

/** The name of a supported ggml type. */
export type GgmlTypeName = keyof typeof GgmlType;

/** The ggml type numbers this plugin reads (as float32, and the quantized ones also kept quantized). */
export const SUPPORTED_GGML_TYPES: readonly number[] = Object.values(GgmlType);

// The layouts of the supported types only: any other type is refused by name.
const LAYOUTS: Readonly<Record<number, GgmlBlockLayout>> = Object.fromEntries(
  SUPPORTED_GGML_TYPES.map((t) => [t, GGML_BLOCK_LAYOUTS[t]!]),
);

/** Their names, in the same order, for messages. */
export const SUPPORTED_GGML_TYPE_NAMES: readonly string[] = Object.keys(GgmlType);

/** The quantized ones among them: what `toBlockQuantized` maps onto a `BlockQuantizedMatrix`. */
export const BLOCK_QUANTIZED_GGML_TYPES: readonly number[] = SUPPORTED_GGML_TYPES.filter(
  (t) => LAYOUTS[t]!.blockElems > 1,
);

/** The name of a ggml tensor type, for messages. */
export function ggmlTypeName(type: number): string {
  return GGML_TYPE_NAMES[type] ?? `type ${type}`;
}

/** A tensor stored in a ggml type this plugin cannot read (IQ*, TQ*, Q8_K, I8 …). */
export class UnsupportedTensorTypeError extends Error {
  /** The tensor's name. */
  readonly tensor: string;
  /** Its ggml type number. */
  readonly type: number;

  constructor(tensor: string, type: number, what = 'read') {
    super(
      `tensor ${tensor} is stored as ${ggmlTypeName(type)}, which cannot be ${what}; ` +
        `supported types: ${SUPPORTED_GGML_TYPE_NAMES.join(', ')}`,
    );
    this.name = 'UnsupportedTensorTypeError';
    this.tensor = tensor;
    this.type = type;
  }
}

/** The block layout of `type`, or an `UnsupportedTensorTypeError` naming `tensor`. */
export function ggmlLayout(tensor: string, type: number): GgmlBlockLayout {
  const layout = LAYOUTS[type];
  if (!layout) throw new UnsupportedTensorTypeError(tensor, type);
  return layout;
}
