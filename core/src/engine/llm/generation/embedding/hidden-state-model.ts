import { readFile, rename, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { decodeModel, tensorType } from '@nucleus/sdk/onnx';

/** A decoder graph that also returns the final hidden states, and the name of that output. */
export interface HiddenStateModel {
  /** The model bytes, or a path when it has external data (which must be resolved next to the original). */
  model: Uint8Array | string;
  output: string;
}

const PROJECTIONS = new Set(['MatMul', 'Gemm', 'MatMulNBits']);

/**
 * The decoder with the input of its language-model head (the final normalised hidden states, `[batch, seq,
 * hidden]`) added as a graph output, for last-token embeddings. Throws when `logits` does not come straight from
 * a projection. A model with external data is written beside the original so its data files still resolve.
 */
export async function hiddenStateModel(
  onnxPath: string,
  hiddenSize: number,
  dtype: 'float32' | 'float16' = 'float32',
): Promise<HiddenStateModel> {
  const model = decodeModel(await readFile(onnxPath));
  const head = model.graph.nodes.find((n) => n.outputs.includes('logits'));
  if (!head || !PROJECTIONS.has(head.opType) || !head.inputs[0]) {
    throw new Error(
      `logits do not come from a projection of the hidden states (${head ? head.opType : 'no node'} makes them)`,
    );
  }
  const output = head.inputs[0];
  if (!model.graph.outputs.some((o) => o.name === output)) {
    model.graph.outputs.push({ name: output, type: tensorType(dtype, ['batch_size', 'sequence_length', hiddenSize]) });
  }
  const external = model.graph.initializers.some((t) => t.external !== undefined);
  const bytes = model.encode();
  if (!external) return { model: bytes, output };
  const path = join(dirname(onnxPath), `.${basename(onnxPath, '.onnx')}.hidden-states.onnx`);
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, bytes);
  await rename(tmp, path);
  return { model: path, output };
}
