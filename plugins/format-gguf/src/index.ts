import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { ggufFormat } from './gguf-format.js';

export { ggufFormat } from './gguf-format.js';
export { inspectGguf, SUPPORTED_ARCHITECTURES, type GgufLlama } from './gguf-architecture.js';
export { readGgufWeights } from './gguf-weights.js';
export { loadGguf, type LoadGgufOptions } from './load-gguf.js';
export {
  GgufFormatError,
  GgufValueType,
  readGguf,
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
} from './gguf-reader.js';
export { ggufTokenizer, type GgufTokenizer } from './gguf-tokenizer.js';
export {
  GGML_TYPE_NAMES,
  ggmlTypeName,
  halfToFloat,
  readTensorBytes,
  readTensorF32,
  toBlockQuantized,
} from './gguf-tensors.js';
export {
  BLOCK_QUANTIZED_GGML_TYPES,
  GgmlType,
  SUPPORTED_GGML_TYPE_NAMES,
  SUPPORTED_GGML_TYPES,
  UnsupportedTensorTypeError,
  type GgmlTypeName,
} from './ggml-types.js';
export { bfloat16ToFloat } from './ggml-half.js';
export { dequantizeGgml } from './ggml-dequant.js';
export { GGML_BLOCK_LAYOUTS } from './ggml-block-layouts.js';
export { checkGgufLimits } from './gguf-limits.js';
export { ggufMeta, writeGguf, type Meta, type RawTensor } from './gguf-writer.js';

/** Contributes the `gguf` model format. */
export default definePlugin({
  activate(ctx) {
    ctx.contribute(ExtensionPoints.modelFormat, ggufFormat);
  },
});
