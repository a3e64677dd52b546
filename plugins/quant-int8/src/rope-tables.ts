import { createTensor, tensorByteLength, type OnnxModel, type OnnxTensor } from '@nucleus/sdk/onnx';
import { GraphEditor, node } from './graph-editor.js';

/** What `computeRopeTables` did. */
export interface RopeTablesReport {
  /** Pairs of cos/sin tables now computed by the graph. */
  pairs: number;
  /** Bytes of the tables no longer stored, and of the frequencies stored instead. */
  removedBytes: number;
  addedBytes: number;
  /** Largest |stored − recomputed| over the tables replaced. */
  maxError: number;
}

// A table entry and its recomputation agree to this: float32 rounding of cos/sin, not a different frequency.
const TOLERANCE = 1e-5;

const f32 = new Float32Array(1);
const i32 = new Int32Array(f32.buffer);
// The float32 `steps` ulps from positive `x`.
function ulps(x: number, steps: number): number {
  f32[0] = x;
  i32[0] = i32[0]! + steps;
  return f32[0]!;
}

// The float32 frequency of column `i` whose angles p·freq (rounded to float32, as the table's builder and ORT's Mul
// do) give back both columns, and the largest difference; undefined when no frequency does.
function frequencyOf(cos: Float32Array, sin: Float32Array, rows: number, half: number, i: number) {
  const guess = Math.fround(Math.atan2(sin[half + i]!, cos[half + i]!));
  if (!(guess > 0)) return undefined;
  let best: { freq: number; error: number } | undefined;
  for (let step = -2; step <= 2; step++) {
    const freq = ulps(guess, step);
    let error = 0;
    for (let p = 0; p < rows && error <= TOLERANCE; p++) {
      const angle = Math.fround(p * freq);
      error = Math.max(
        error,
        Math.abs(Math.cos(angle) - cos[p * half + i]!),
        Math.abs(Math.sin(angle) - sin[p * half + i]!),
      );
    }
    if (error <= TOLERANCE && (!best || error < best.error)) best = { freq, error };
  }
  return best;
}

/** A constant cos/sin pair that is plain RoPE: the frequencies that give it back, and how closely. */
export interface RopeTablePair {
  cos: OnnxTensor;
  sin: OnnxTensor;
  freqs: Float32Array;
  maxError: number;
}

/**
 * Constant `[positions, half]` float32 pairs that are exactly cos and sin of `p · freq_i` (row 0 all 1 and all 0,
 * every entry within float32 rounding of the recomputation): RoPE tables, whatever their names.
 */
export function findRopeTables(model: OnnxModel): RopeTablePair[] {
  const g = new GraphEditor(model);
  const candidates = model.graph.initializers.filter(
    (t) =>
      t.dtype === 'float32' &&
      t.dims.length === 2 &&
      t.dims[0]! >= 2 &&
      !t.external &&
      !g.graphInputs.has(t.name) &&
      g.uses(t.name) > 0,
  );
  const row0 = (t: OnnxTensor, value: number): boolean =>
    (t.data as Float32Array).subarray(0, t.dims[1]!).every((v) => v === value);
  const used = new Set<OnnxTensor>();
  const pairs: RopeTablePair[] = [];
  for (const cos of candidates.filter((t) => row0(t, 1))) {
    const sin = candidates.find(
      (t) => !used.has(t) && t.dims[0] === cos.dims[0] && t.dims[1] === cos.dims[1] && row0(t, 0),
    );
    if (!sin) continue;
    const [rows, half] = cos.dims as [number, number];
    const freqs = new Float32Array(half);
    let maxError = 0;
    let ok = true;
    for (let i = 0; i < half && ok; i++) {
      const found = frequencyOf(cos.data as Float32Array, sin.data as Float32Array, rows, half, i);
      if (!found) ok = false;
      else {
        freqs[i] = found.freq;
        maxError = Math.max(maxError, found.error);
      }
    }
    if (!ok) continue;
    used.add(sin);
    pairs.push({ cos, sin, freqs, maxError });
  }
  return pairs;
}

/**
 * RoPE tables computed by the graph instead of stored: each pair `findRopeTables` finds is replaced by `Cos` / `Sin`
 * of `Range(0, positions) ⊗ freq`, values of the same names, so every reader (a Gather by position,
 * GroupQueryAttention's caches) is unchanged. Only the `half` frequencies are stored; ORT folds the nodes back into
 * the tables when it opens the session, so running costs nothing. Tables that are not plain RoPE (YaRN's scaled ones)
 * do not match and stay stored.
 */
export function computeRopeTables(model: OnnxModel): RopeTablesReport {
  const g = new GraphEditor(model);
  const report: RopeTablesReport = { pairs: 0, removedBytes: 0, addedBytes: 0, maxError: 0 };
  // Unsqueeze with its axes as an input (13+).
  if (g.opset < 13) return report;
  const removed = new Set<string>();
  const nodes = [];
  for (const { cos, sin, freqs, maxError } of findRopeTables(model)) {
    const [rows, half] = cos.dims as [number, number];
    const base = `${cos.name}.computed`;
    const [start, limit, delta, freqName] = ['start', 'limit', 'delta', 'freqs'].map((n) =>
      g.fresh(`${base}.${n}`),
    ) as [string, string, string, string];
    const added = [
      createTensor(start, new Float32Array([0]), []),
      createTensor(limit, new Float32Array([rows]), []),
      createTensor(delta, new Float32Array([1]), []),
      createTensor(freqName, freqs, [1, half]),
    ];
    model.graph.initializers.push(...added);
    const [positions, column, angles] = ['positions', 'column', 'angles'].map((n) => g.fresh(`${base}.${n}`)) as [
      string,
      string,
      string,
    ];
    const axes = g.fresh(`${base}.axes`);
    model.graph.initializers.push(createTensor(axes, BigInt64Array.from([1n]), [1]));
    nodes.push(
      node('Range', [start, limit, delta], [positions], g.fresh(`${base}.Range`)),
      node('Unsqueeze', [positions, axes], [column], g.fresh(`${base}.Unsqueeze`)),
      node('Mul', [column, freqName], [angles], g.fresh(`${base}.Mul`)),
      node('Cos', [angles], [cos.name], g.fresh(`${base}.Cos`)),
      node('Sin', [angles], [sin.name], g.fresh(`${base}.Sin`)),
    );
    removed.add(cos.name).add(sin.name);
    report.pairs++;
    report.removedBytes += tensorByteLength(cos) + tensorByteLength(sin);
    report.addedBytes += freqs.byteLength + 3 * 4 + 8;
    report.maxError = Math.max(report.maxError, maxError);
  }
  if (report.pairs === 0) return report;
  model.graph.initializers = model.graph.initializers.filter((t) => !removed.has(t.name));
  model.graph.nodes = [...nodes, ...model.graph.nodes];
  return report;
}
