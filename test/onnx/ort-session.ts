// Runs builder output through onnxruntime-node, as the runtime will.
import * as ort from 'onnxruntime-node';
import type { OnnxModel } from '@nucleus/sdk/onnx';

ort.env.logLevel = 'fatal';

/** ORT's tensor class, for building feeds. */
export const OrtTensor = ort.Tensor;

/** Encodes `model`, loads it into a fresh CPU session and runs it once. */
export async function runModel(
  model: OnnxModel | Uint8Array | string,
  feeds: Record<string, ort.Tensor>,
): Promise<Record<string, ort.Tensor>> {
  const session =
    typeof model === 'string'
      ? await ort.InferenceSession.create(model, sessionOptions)
      : await ort.InferenceSession.create(model instanceof Uint8Array ? model : model.encode(), sessionOptions);
  try {
    return (await session.run(feeds)) as Record<string, ort.Tensor>;
  } finally {
    await session.release();
  }
}

/** Creates a session without running it (to see whether ORT accepts a model). */
export async function loadSession(model: OnnxModel): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(model.encode(), sessionOptions);
}

const sessionOptions: ort.InferenceSession.SessionOptions = {
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  extra: { session: { intra_op: { allow_spinning: '0' } } },
};

/** A float32 ORT tensor. */
export function f32(data: ArrayLike<number>, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', Float32Array.from(data), dims);
}

/** An int64 ORT tensor. */
export function i64(data: ArrayLike<number>, dims: number[]): ort.Tensor {
  return new ort.Tensor(
    'int64',
    BigInt64Array.from(Array.from(data), (v) => BigInt(v)),
    dims,
  );
}
