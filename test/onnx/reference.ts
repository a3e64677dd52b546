// Plain-TypeScript reference implementations the ORT results are checked against.
import assert from 'node:assert/strict';

/** [m,k] × [k,n] row-major. */
export function matMul(a: ArrayLike<number>, b: ArrayLike<number>, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++)
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[p * n + j]!;
      out[i * n + j] = s;
    }
  return out;
}

/** Softmax over the last axis of a [rows, n] array. */
export function softmaxRows(x: ArrayLike<number>, rows: number, n: number): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < n; j++) max = Math.max(max, x[r * n + j]!);
    let sum = 0;
    for (let j = 0; j < n; j++) sum += out[r * n + j] = Math.exp(x[r * n + j]! - max);
    for (let j = 0; j < n; j++) out[r * n + j]! /= sum;
  }
  return out;
}

/** LayerNorm over the last axis of [rows, n]. */
export function layerNormRows(
  x: ArrayLike<number>,
  rows: number,
  n: number,
  scale: ArrayLike<number>,
  bias: ArrayLike<number>,
  eps: number,
): Float64Array {
  const out = new Float64Array(rows * n);
  for (let r = 0; r < rows; r++) {
    let mean = 0;
    for (let j = 0; j < n; j++) mean += x[r * n + j]!;
    mean /= n;
    let v = 0;
    for (let j = 0; j < n; j++) v += (x[r * n + j]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps);
    for (let j = 0; j < n; j++) out[r * n + j] = (x[r * n + j]! - mean) * inv * scale[j]! + bias[j]!;
  }
  return out;
}

/** 2-D convolution, NCHW, weights [cout, cin/group, kh, kw], symmetric pads. */
export function conv2d(
  x: ArrayLike<number>,
  [n, cin, h, w]: number[],
  weight: ArrayLike<number>,
  [cout, , kh, kw]: number[],
  bias: ArrayLike<number> | undefined,
  o: { stride: number; pad: number; group?: number },
): { data: Float64Array; dims: number[] } {
  const group = o.group ?? 1;
  const cinPerGroup = cin! / group;
  const coutPerGroup = cout! / group;
  const oh = Math.floor((h! + 2 * o.pad - kh!) / o.stride) + 1;
  const ow = Math.floor((w! + 2 * o.pad - kw!) / o.stride) + 1;
  const out = new Float64Array(n! * cout! * oh * ow);
  for (let b = 0; b < n!; b++)
    for (let co = 0; co < cout!; co++) {
      const g = Math.floor(co / coutPerGroup);
      for (let y = 0; y < oh; y++)
        for (let xx = 0; xx < ow; xx++) {
          let s = bias ? bias[co]! : 0;
          for (let ci = 0; ci < cinPerGroup; ci++)
            for (let ky = 0; ky < kh!; ky++)
              for (let kx = 0; kx < kw!; kx++) {
                const iy = y * o.stride - o.pad + ky;
                const ix = xx * o.stride - o.pad + kx;
                if (iy < 0 || ix < 0 || iy >= h! || ix >= w!) continue;
                const c = g * cinPerGroup + ci;
                s +=
                  x[((b * cin! + c) * h! + iy) * w! + ix]! * weight[((co * cinPerGroup + ci) * kh! + ky) * kw! + kx]!;
              }
          out[((b * cout! + co) * oh + y) * ow + xx] = s;
        }
    }
  return { data: out, dims: [n!, cout!, oh, ow] };
}

/** Asserts two numeric arrays have the same length and agree elementwise within `tol`. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (Number.isNaN(d)) assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${expected[i]}`);
    if (d > worst) {
      worst = d;
      at = i;
    }
  }
  assert.ok(
    worst <= tol,
    `${what}: element ${at} is ${actual[at]}, expected ${expected[at]} (|diff| ${worst} > ${tol})`,
  );
}

/** Deterministic pseudo-random floats in [-1, 1). */
export function pseudoRandom(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}
