import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { safetensorsFormat } from './safetensors-format.js';

export { isCheckpointFolder, safetensorsFormat } from './safetensors-format.js';
export {
  checkpointName,
  inspectCheckpoint,
  readFolderJson,
  SUPPORTED_HF_ARCHITECTURES,
  type HfLlama,
} from './hf-checkpoint.js';
export { LOAD_QUANTIZATIONS, readCheckpointWeights, type LoadQuantization } from './hf-weights.js';
export { ensureSafetensorsGraph, loadSafetensors, type LoadSafetensorsOptions } from './load-safetensors.js';
export {
  INDEX_FILE,
  openCheckpoint,
  safetensorsFilesIn,
  type SafetensorsCheckpoint,
} from './safetensors-checkpoint.js';
export {
  FLOAT_DTYPES,
  readSafetensors,
  readTensorF32,
  SafetensorsFormatError,
  type SafetensorsFile,
  type SafetensorsTensor,
} from './safetensors-reader.js';
export { writeSafetensors, type SafetensorsEntry } from './safetensors-writer.js';

/** Contributes the `safetensors` model format. */
export default definePlugin({
  activate(ctx) {
    ctx.contribute(ExtensionPoints.modelFormat, safetensorsFormat);
  },
});
