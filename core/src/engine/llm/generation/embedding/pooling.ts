import type { EmbeddingPooling } from '@nucleus/sdk';

/**
 * One vector per row from per-token hidden states `[rows, seq, hidden]`: the mean over a row's real tokens, its
 * first token (CLS) or its last real token. `firstReal[r]` and `lengths[r]` say where row r's real tokens are
 * (right padding starts them at 0, left padding at `seq - length`).
 */
export function poolHiddenStates(
  hidden: Float32Array,
  shape: readonly [number, number, number],
  rows: { firstReal: number; length: number }[],
  pooling: EmbeddingPooling,
): Float32Array[] {
  const [, seq, width] = shape;
  return rows.map(({ firstReal, length }, r) => {
    const out = new Float32Array(width);
    const at = (t: number) => (r * seq + t) * width;
    if (pooling === 'cls') out.set(hidden.subarray(at(firstReal), at(firstReal) + width));
    else if (pooling === 'last')
      out.set(hidden.subarray(at(firstReal + length - 1), at(firstReal + length - 1) + width));
    else {
      for (let t = firstReal; t < firstReal + length; t++) {
        const base = at(t);
        for (let i = 0; i < width; i++) out[i] += hidden[base + i]!;
      }
      for (let i = 0; i < width; i++) out[i] /= Math.max(1, length);
    }
    return out;
  });
}

/** Keeps the first `dimensions` values (when given) and, with `normalize`, scales to unit length. */
export function finishEmbedding(
  vector: Float32Array,
  options: { normalize: boolean; dimensions?: number },
): Float32Array {
  const v =
    options.dimensions !== undefined && options.dimensions < vector.length
      ? vector.slice(0, options.dimensions)
      : vector;
  if (!options.normalize) return v;
  let norm = 0;
  for (let i = 0; i < v.length; i++) norm += v[i]! * v[i]!;
  norm = Math.sqrt(norm);
  if (norm > 0) for (let i = 0; i < v.length; i++) v[i] /= norm;
  return v;
}
