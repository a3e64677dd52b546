// Runs the float model over the calibration set in a worker thread: onnxruntime-node's session.run blocks the thread
// it is called on, and a server loading a model with `quantize: static` must keep answering meanwhile.
import { parentPort, workerData } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import type { Sample } from './calibration-data.js';
import { TensorStats, type TensorRange } from './calibrator.js';
import type { CalibratorKind } from './quantize-options.js';

/** What the worker is given. */
export interface CalibrationJob {
  /** The float graph with every tensor to calibrate added to its outputs. */
  model: Uint8Array;
  tensors: string[];
  samples: Sample[];
  calibrator: CalibratorKind;
  percentile: number;
}

/** What it answers: a range per tensor, or why it could not. */
export type CalibrationAnswer =
  | { ok: true; ranges: Record<string, TensorRange> }
  | { ok: false; message: string }
  | { progress: number };

async function calibrate(job: CalibrationJob): Promise<Record<string, TensorRange>> {
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(job.model, { intraOpNumThreads: 1 });
  try {
    const stats = new Map(job.tensors.map((name) => [name, new TensorStats()]));
    const passes = job.calibrator === 'minmax' ? 1 : 2;
    let done = 0;
    for (let pass = 0; pass < passes; pass++) {
      for (const sample of job.samples) {
        const feeds: Record<string, ort.Tensor> = {};
        for (const [name, t] of Object.entries(sample)) feeds[name] = new ort.Tensor(t.dtype, t.data, t.dims);
        const fetched = job.tensors.filter((name) => !(name in sample));
        const outputs = fetched.length > 0 ? await session.run(feeds, fetched) : {};
        for (const [name, s] of stats) {
          const values = (outputs[name]?.data ?? sample[name]?.data) as Float32Array | undefined;
          if (!values) continue;
          if (pass === 0) s.observeRange(values);
          else s.observeHistogram(values);
        }
        parentPort!.postMessage({ progress: ++done } satisfies CalibrationAnswer);
      }
    }
    return Object.fromEntries([...stats].map(([name, s]) => [name, s.range(job.calibrator, job.percentile)]));
  } finally {
    await session.release();
  }
}

calibrate(workerData as CalibrationJob).then(
  (ranges) => parentPort!.postMessage({ ok: true, ranges } satisfies CalibrationAnswer),
  (err: unknown) =>
    parentPort!.postMessage({ ok: false, message: (err as Error).message ?? String(err) } satisfies CalibrationAnswer),
);
