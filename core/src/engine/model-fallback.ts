import type { InferRequest } from '@nucleus/sdk';
import type { LoadedModel } from './loaded-model.js';

// Same input names and dtypes, and dimensions that agree wherever both are fixed.
function sameInputs(
  a: readonly { name: string; dtype: string; shape: readonly number[] }[],
  b: readonly { name: string; dtype: string; shape: readonly number[] }[],
): boolean {
  if (a.length !== b.length) return false;
  return a.every((x) => {
    const y = b.find((t) => t.name === x.name);
    return (
      y !== undefined &&
      y.dtype === x.dtype &&
      y.shape.length === x.shape.length &&
      x.shape.every((d, i) => d < 0 || y.shape[i]! < 0 || d === y.shape[i])
    );
  });
}

/**
 * Whether `target` (a model's configured fallback) takes what `request` was meant for: the inputs of the model it
 * named (`mine`, when a version of it is loaded), else the request's own inputs.
 */
export function takesSameInputs(request: InferRequest, mine: LoadedModel | undefined, target: LoadedModel): boolean {
  const expected = mine
    ? mine.signature.inputs
    : Object.entries(request.inputs).map(([name, t]) => ({ name, dtype: t.dtype, shape: t.shape.map(() => -1) }));
  return sameInputs(expected, target.signature.inputs);
}
