/** A weight as int8 with one scale per output channel (or one for the whole tensor), zero point 0. */
export interface ChannelQuantized {
  values: Int8Array;
  /** One per channel along `axis`, or one when `axis` is undefined. */
  scales: Float32Array;
  axis?: number;
  /** Largest |w − scale·q|. */
  maxError: number;
}

/**
 * Symmetric int8 (ORT's default for weights, [−127, 127]) per channel along `axis` of a tensor with `dims`, or per
 * tensor when `axis` is undefined. A channel of zeros gets scale 1, so a DequantizeLinear never divides by zero.
 */
export function quantizeChannels(values: Float32Array, dims: readonly number[], axis?: number): ChannelQuantized {
  const channels = axis === undefined ? 1 : dims[axis]!;
  // Elements between consecutive indices of `axis` (row-major).
  const inner = axis === undefined ? values.length : dims.slice(axis + 1).reduce((a, b) => a * b, 1);
  const channelOf = (i: number): number => (axis === undefined ? 0 : Math.floor(i / inner) % channels);
  const amax = new Float32Array(channels);
  for (let i = 0; i < values.length; i++) {
    const c = channelOf(i);
    amax[c] = Math.max(amax[c]!, Math.abs(values[i]!));
  }
  const scales = amax.map((a) => (a === 0 ? 1 : Math.fround(a / 127)));
  const q = new Int8Array(values.length);
  let maxError = 0;
  for (let i = 0; i < values.length; i++) {
    const s = scales[channelOf(i)]!;
    // Round half to even, as QuantizeLinear does.
    const v = Math.max(-127, Math.min(127, roundHalfEven(values[i]! / s)));
    q[i] = v;
    maxError = Math.max(maxError, Math.abs(Math.fround(v * s) - values[i]!));
  }
  return { values: q, scales, ...(axis !== undefined && { axis }), maxError };
}

/** Round half to even, the rounding of ONNX QuantizeLinear. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Scale and zero point mapping `[min, max]` (holding 0) onto uint8 with a zero point, or onto symmetric int8. */
export function activationParams(
  range: { min: number; max: number },
  type: 'uint8' | 'int8',
): { scale: number; zeroPoint: number } {
  const min = Math.min(0, range.min);
  const max = Math.max(0, range.max);
  if (type === 'int8') {
    const amax = Math.max(-min, max);
    return { scale: amax === 0 ? 1 : Math.fround(amax / 127), zeroPoint: 0 };
  }
  if (max === min) return { scale: 1, zeroPoint: 0 };
  const scale = Math.fround((max - min) / 255);
  return { scale, zeroPoint: Math.max(0, Math.min(255, roundHalfEven(-min / scale))) };
}
