// The ggml tensor types: their numbers and names, and the block layout of each type this plugin reads.

/** ggml tensor types by number (ggml.h `enum ggml_type`), for reading and for naming unsupported ones. */
export const GGML_TYPE_NAMES: Readonly<Record<number, string>> = {
  0: 'F32',
  1: 'F16',
  2: 'Q4_0',
  3: 'Q4_1',
  6: 'Q5_0',
  7: 'Q5_1',
  8: 'Q8_0',
  9: 'Q8_1',
  10: 'Q2_K',
  11: 'Q3_K',
  12: 'Q4_K',
  13: 'Q5_K',
  14: 'Q6_K',
  15: 'Q8_K',
  16: 'IQ2_XXS',
  17: 'IQ2_XS',
  18: 'IQ3_XXS',
  19: 'IQ1_S',
  20: 'IQ4_NL',
  21: 'IQ3_S',
  22: 'IQ2_S',
  23: 'IQ4_XS',
  24: 'I8',
  25: 'I16',
  26: 'I32',
  27: 'I64',
  28: 'F64',
  29: 'IQ1_M',
  30: 'BF16',
  34: 'TQ1_0',
  35: 'TQ2_0',
  39: 'MXFP4',
};

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

/** How a type stores its values: `blockBytes` bytes hold `blockElems` consecutive values of one row. */
export interface GgmlBlockLayout {
  readonly blockBytes: number;
  readonly blockElems: number;
}

// Sizes of ggml-common.h's block structs: half d (+ half m), high bits, packed quants, sub-block scales.
const LAYOUTS: Readonly<Record<number, GgmlBlockLayout>> = {
  [GgmlType.F32]: { blockBytes: 4, blockElems: 1 },
  [GgmlType.F16]: { blockBytes: 2, blockElems: 1 },
  [GgmlType.BF16]: { blockBytes: 2, blockElems: 1 },
  [GgmlType.Q4_0]: { blockBytes: 2 + 16, blockElems: 32 },
  [GgmlType.Q4_1]: { blockBytes: 2 + 2 + 16, blockElems: 32 },
  [GgmlType.Q5_0]: { blockBytes: 2 + 4 + 16, blockElems: 32 },
  [GgmlType.Q5_1]: { blockBytes: 2 + 2 + 4 + 16, blockElems: 32 },
  [GgmlType.Q8_0]: { blockBytes: 2 + 32, blockElems: 32 },
  [GgmlType.Q2_K]: { blockBytes: 16 + 64 + 2 + 2, blockElems: 256 },
  [GgmlType.Q3_K]: { blockBytes: 32 + 64 + 12 + 2, blockElems: 256 },
  [GgmlType.Q4_K]: { blockBytes: 2 + 2 + 12 + 128, blockElems: 256 },
  [GgmlType.Q5_K]: { blockBytes: 2 + 2 + 12 + 32 + 128, blockElems: 256 },
  [GgmlType.Q6_K]: { blockBytes: 128 + 64 + 16 + 2, blockElems: 256 },
};

/** The ggml type numbers this plugin reads (as float32, and the quantized ones also kept quantized). */
export const SUPPORTED_GGML_TYPES: readonly number[] = Object.values(GgmlType);

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
