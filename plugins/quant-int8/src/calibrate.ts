import { Worker } from 'node:worker_threads';
import { NucleusError, noProgress, type Progress } from '@nucleus/sdk';
import { OnnxModel } from '@nucleus/sdk/onnx';
import type { Sample } from './calibration-data.js';
import type { CalibrationAnswer, CalibrationJob } from './calibration-worker.js';
import type { TensorRange } from './calibrator.js';
import type { CalibratorKind } from './quantize-options.js';

/**
 * The range of each of `tensors` over `samples`, as `calibrator` reads them: a copy of `model` with those tensors
 * added to its outputs runs in onnxruntime-node in a worker thread (one pass for min-max, two for the histogram
 * calibrators), so the caller's event loop stays free.
 */
export async function calibrateRanges(
  model: OnnxModel,
  tensors: string[],
  samples: Sample[],
  calibrator: CalibratorKind,
  percentile: number,
  progress: Progress = noProgress,
): Promise<Map<string, TensorRange>> {
  const copy = OnnxModel.decode(model.encode());
  const outputs = new Set(copy.graph.outputs.map((o) => o.name));
  const inputs = new Set(copy.graph.inputs.map((i) => i.name));
  for (const name of tensors)
    if (!outputs.has(name) && !inputs.has(name))
      copy.graph.outputs.push({ name, type: { kind: 'tensor', dtype: 'float32' } });
  const job: CalibrationJob = { model: copy.encode(), tensors, samples, calibrator, percentile };
  const passes = calibrator === 'minmax' ? 1 : 2;
  progress.start(samples.length * passes, `calibrating on ${samples.length} samples (${calibrator})`);
  const worker = new Worker(new URL('./calibration-worker.js', import.meta.url), { workerData: job });
  try {
    const ranges = await new Promise<Record<string, TensorRange>>((resolve, reject) => {
      worker.on('message', (m: CalibrationAnswer) => {
        if ('progress' in m) progress.advance(1);
        else if (m.ok) resolve(m.ranges);
        else
          reject(
            new NucleusError(422, 'calibration_failed', `calibration run of the float model failed: ${m.message}`),
          );
      });
      worker.on('error', reject);
      worker.on('exit', (code) => reject(new Error(`calibration worker exited with code ${code}`)));
    });
    return new Map(Object.entries(ranges));
  } finally {
    progress.done();
    await worker.terminate();
  }
}
