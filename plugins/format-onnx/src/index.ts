import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { onnxFormat } from './onnx-format.js';

export { isExportFolder, onnxFormat } from './onnx-format.js';
export { checkGenericLayout, loadOnnxFolder } from './onnx-folder.js';

/** Contributes the `onnx` model format. */
export default definePlugin({
  activate(ctx) {
    ctx.contribute(ExtensionPoints.modelFormat, onnxFormat);
  },
});
