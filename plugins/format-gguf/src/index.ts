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
export { GGML_READABLE_TYPES, GGML_TYPE_NAMES, ggmlTypeName, halfToFloat, readTensorF32 } from './gguf-tensors.js';

/** Contributes the `gguf` model format. */
export default definePlugin({
  activate(ctx) {
    ctx.contribute(ExtensionPoints.modelFormat, ggufFormat);
  },
});
