import {
  badRequest,
  elementCount,
  isTensorDataType,
  NucleusError,
  TENSOR_ARRAYS,
  type Tensor,
  type TensorMetadata,
} from '@nucleus/sdk';
import type { ManifestTensor } from './model-manifest.js';
import type { WireValueMetadata } from './workers/worker-messages.js';

/** Whether something holds, and why not. */
export interface Verdict {
  ok: boolean;
  reason?: string;
}

/** `[-1,4]` for messages. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

function describeOne(t: TensorMetadata): string {
  return `${t.name} (${t.dtype} ${formatShape(t.shape)})`;
}

function fromOrt(
  kind: 'input' | 'output',
  v: WireValueMetadata,
  described: ManifestTensor | undefined,
  label: string,
): TensorMetadata {
  if (!v.isTensor || v.type === undefined)
    throw new NucleusError(
      422,
      'unsupported_model',
      `${label}: ${kind} '${v.name}' is not a tensor; Nucleus serves tensor models only`,
    );
  if (!isTensorDataType(v.type)) {
    throw new NucleusError(
      422,
      'unsupported_model',
      `${label}: ${kind} '${v.name}' holds ${v.type}; Nucleus serves numeric and bool tensors only`,
    );
  }
  const dims = v.shape ?? [];
  return {
    name: v.name,
    dtype: v.type,
    shape: dims.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)),
    dimNames: dims.map((d) => (typeof d === 'string' && d !== '' ? d : null)),
    ...(described?.description !== undefined && { description: described.description }),
  };
}

/**
 * A model version's inputs and outputs, read from the ORT session and described by model.json, and the checks a
 * request must pass against them. Every refusal is a 400 naming the input and what the model expects.
 */
export class ModelSignature {
  readonly inputs: TensorMetadata[];
  readonly outputs: TensorMetadata[];

  constructor(
    readonly label: string,
    session: { inputs: readonly WireValueMetadata[]; outputs: readonly WireValueMetadata[] },
    manifest: { inputs?: readonly ManifestTensor[]; outputs?: readonly ManifestTensor[] } = {},
  ) {
    this.inputs = session.inputs.map((v) =>
      fromOrt(
        'input',
        v,
        manifest.inputs?.find((m) => m.name === v.name),
        label,
      ),
    );
    this.outputs = session.outputs.map((v) =>
      fromOrt(
        'output',
        v,
        manifest.outputs?.find((m) => m.name === v.name),
        label,
      ),
    );
  }

  /** Names model.json describes that the model does not have, or whose dtype disagrees; worth a warning. */
  manifestMismatches(manifest: { inputs?: readonly ManifestTensor[]; outputs?: readonly ManifestTensor[] }): string[] {
    const out: string[] = [];
    for (const [kind, declared, actual] of [
      ['input', manifest.inputs ?? [], this.inputs],
      ['output', manifest.outputs ?? [], this.outputs],
    ] as const) {
      for (const d of declared) {
        const a = actual.find((t) => t.name === d.name);
        if (!a) out.push(`model.json describes ${kind} '${d.name}', which the model does not have`);
        else if (d.dtype !== undefined && d.dtype !== a.dtype)
          out.push(`model.json says ${kind} '${d.name}' is ${d.dtype}, the model says ${a.dtype}`);
      }
    }
    return out;
  }

  /** Every input and output has a leading symbolic dimension, so requests can be stacked along it. */
  batchable(): Verdict {
    for (const [kind, list] of [
      ['input', this.inputs],
      ['output', this.outputs],
    ] as const) {
      for (const t of list) {
        if (t.shape.length === 0 || t.shape[0] !== -1) {
          return { ok: false, reason: `${kind} '${t.name}' has no batch dimension (shape ${formatShape(t.shape)})` };
        }
      }
    }
    return { ok: true };
  }

  /**
   * Ragged requests may be padded into one batch only when padding cannot change the answer: the model takes an
   * attention mask (padding is written as 0 in every input, so the mask marks it) and every variable output
   * dimension is named after an input dimension, so outputs can be cut back to each request's length.
   */
  paddable(): Verdict {
    if (!this.inputs.some((t) => /attention_mask/i.test(t.name)))
      return { ok: false, reason: 'the model has no attention_mask input' };
    const inputDims = new Set(this.inputs.flatMap((t) => t.dimNames.slice(1).filter((n): n is string => n !== null)));
    for (const t of [...this.inputs, ...this.outputs]) {
      for (let i = 1; i < t.shape.length; i++) {
        if (t.shape[i] !== -1) continue;
        const name = t.dimNames[i];
        if (name === null || name === undefined)
          return { ok: false, reason: `dimension ${i} of '${t.name}' is variable but unnamed` };
        if (!inputDims.has(name))
          return { ok: false, reason: `output dimension '${name}' of '${t.name}' matches no input dimension` };
      }
    }
    return { ok: true };
  }

  /** Checks names, dtypes, shapes and data lengths; returns the batch size (the first dimension). */
  validate(given: Record<string, Tensor>): { rows: number } {
    const expected = (): string => this.inputs.map(describeOne).join(', ');
    for (const name of Object.keys(given)) {
      if (!this.inputs.some((t) => t.name === name)) {
        throw badRequest(
          'unknown_input',
          `${this.label} has no input named '${name}'; its inputs are ${expected()}`,
          name,
        );
      }
    }
    const dimSizes = new Map<string, { size: number; input: string }>();
    let rows = 1;
    for (const meta of this.inputs) {
      const t = given[meta.name];
      if (t === undefined)
        throw badRequest(
          'missing_input',
          `input '${meta.name}' is missing; ${this.label} expects ${expected()}`,
          meta.name,
        );
      if (!isTensorDataType(t.dtype))
        throw badRequest(
          'invalid_datatype',
          `input '${meta.name}' has unknown datatype '${String(t.dtype)}'; expected ${meta.dtype}`,
          meta.name,
        );
      if (t.dtype !== meta.dtype) {
        throw badRequest(
          'invalid_datatype',
          `input '${meta.name}' is ${t.dtype}, but ${this.label} expects ${meta.dtype}`,
          meta.name,
        );
      }
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw badRequest(
          'invalid_shape',
          `input '${meta.name}' has shape ${JSON.stringify(t.shape)}; a shape is a list of non-negative integers`,
          meta.name,
        );
      }
      const wrongDim =
        t.shape.length === meta.shape.length ? meta.shape.findIndex((d, i) => d !== -1 && d !== t.shape[i]) : -2;
      if (wrongDim !== -1) {
        const why =
          wrongDim === -2
            ? `it must have ${meta.shape.length} dimension${meta.shape.length === 1 ? '' : 's'}`
            : `dimension ${wrongDim} must be ${meta.shape[wrongDim]}`;
        throw badRequest(
          'invalid_shape',
          `input '${meta.name}' has shape ${formatShape(t.shape)}, but ${this.label} expects ${formatShape(meta.shape)} (-1: any size): ${why}`,
          meta.name,
        );
      }
      const count = elementCount(t.shape);
      if (!(t.data instanceof TENSOR_ARRAYS[meta.dtype]) || t.data.length !== count) {
        throw badRequest(
          'invalid_tensor_data',
          `input '${meta.name}' has shape ${formatShape(t.shape)}, which holds ${count} values, but ${t.data?.length ?? 0} ${meta.dtype} values were given`,
          meta.name,
        );
      }
      for (let i = 0; i < meta.dimNames.length; i++) {
        const name = meta.dimNames[i];
        if (!name) continue;
        const seen = dimSizes.get(name);
        if (seen && seen.size !== t.shape[i]) {
          throw badRequest(
            'invalid_shape',
            `inputs '${seen.input}' and '${meta.name}' disagree on dimension '${name}' (${seen.size} vs ${t.shape[i]})`,
            meta.name,
          );
        }
        dimSizes.set(name, { size: t.shape[i]!, input: meta.name });
      }
      if (meta === this.inputs[0]) rows = t.shape[0] ?? 1;
      else if (meta.shape[0] === -1 && this.inputs[0]!.shape[0] === -1 && t.shape[0] !== rows) {
        throw badRequest(
          'invalid_shape',
          `inputs '${this.inputs[0]!.name}' and '${meta.name}' disagree on the batch dimension (${rows} vs ${t.shape[0]})`,
          meta.name,
        );
      }
    }
    return { rows };
  }

  /** The outputs to return: all, or those named; an unknown name is a 400. */
  selectOutputs(names: readonly string[] | undefined): string[] {
    if (names === undefined || names.length === 0) return this.outputs.map((t) => t.name);
    for (const name of names) {
      if (!this.outputs.some((t) => t.name === name)) {
        throw badRequest(
          'unknown_output',
          `${this.label} has no output named '${name}'; its outputs are ${this.outputs.map(describeOne).join(', ')}`,
          name,
        );
      }
    }
    return [...names];
  }
}
