import {
  elementCount,
  isBigIntDataType,
  NucleusError,
  TENSOR_ARRAYS,
  type InferenceService,
  type Tensor,
  type TensorMetadata,
} from '@nucleus/sdk';
import { errorOf, whenReady, type RowExecutor, type Settled } from './row-executor.js';
import type { InputRow } from './row-source.js';

/** One row's values per model input: flat numbers and the row's own shape (the batch dimension left out). */
type RowInputs = Record<string, { shape: number[]; values: number[] }>;

/**
 * Runs rows of a tensor model in chunks: the valid rows of a chunk that have the same shapes go to the engine as one
 * request of that many rows (at low priority), and its outputs are split back per row. A chunk the engine refuses
 * is run again row by row, so one bad row fails alone.
 */
export class TensorRowExecutor implements RowExecutor {
  readonly #inputs: TensorMetadata[];

  constructor(
    private readonly inference: InferenceService,
    private readonly model: string,
    private readonly version: string | undefined,
    readonly chunkRows: number,
  ) {
    this.#inputs = inference.get(model, version).inputs;
  }

  async execute(rows: InputRow[], signal: AbortSignal): Promise<string[]> {
    const lines: string[] = new Array(rows.length);
    const groups = new Map<string, { at: number[]; inputs: RowInputs[] }>();
    rows.forEach((r, i) => {
      if ('error' in r) return void (lines[i] = errorLine(r.row, r.error));
      try {
        const inputs = this.#rowInputs(r.value);
        const key = Object.values(inputs)
          .map((x) => x.shape.join('x'))
          .join(',');
        let group = groups.get(key);
        if (!group) groups.set(key, (group = { at: [], inputs: [] }));
        group.at.push(i);
        group.inputs.push(inputs);
      } catch (err) {
        lines[i] = errorLine(r.row, errorOf(err));
      }
    });
    for (const { at, inputs } of groups.values()) {
      const settled = await this.#run(inputs, signal);
      if (settled.ok) {
        at.forEach((i, k) => (lines[i] = resultLine(rows[i]!.row, settled.value, k)));
        continue;
      }
      // One row may have sunk the chunk: find which.
      for (let k = 0; k < at.length; k++) {
        const one = at.length === 1 ? settled : await this.#run([inputs[k]!], signal);
        lines[at[k]!] = one.ok ? resultLine(rows[at[k]!]!.row, one.value, 0) : errorLine(rows[at[k]!]!.row, one.error);
      }
    }
    return lines;
  }

  async #run(rows: RowInputs[], signal: AbortSignal): Promise<Settled<Record<string, Tensor>>> {
    const inputs: Record<string, Tensor> = {};
    for (const meta of this.#inputs) {
      const shape = rows[0]![meta.name]!.shape;
      const per = elementCount(shape);
      const Array_ = TENSOR_ARRAYS[meta.dtype];
      const data = new Array_(per * rows.length);
      const big = isBigIntDataType(meta.dtype);
      rows.forEach((r, k) => {
        const values = r[meta.name]!.values;
        if (big) for (let j = 0; j < per; j++) (data as BigInt64Array)[k * per + j] = BigInt(Math.trunc(values[j]!));
        else (data as Float32Array).set(values, k * per);
      });
      inputs[meta.name] = { dtype: meta.dtype, shape: [rows.length, ...shape], data };
    }
    return settle(async () => {
      const result = await whenReady(
        () =>
          this.inference.infer({
            model: this.model,
            ...(this.version !== undefined && { version: this.version }),
            // Not the job's signal: rows in flight when a job stops still finish, so their lines are written.
            inputs,
            priority: 'low',
          }),
        signal,
      );
      return result.outputs;
    });
  }

  // A row as an object of input names, a KServe v2 request (`{"inputs": [...]}`), a plain array (one input), or
  // named values in order (one input: a CSV row, or a JSON object of features).
  #rowInputs(value: unknown): RowInputs {
    const inputs = this.#inputs;
    const named = (v: unknown): v is Record<string, unknown> =>
      typeof v === 'object' && v !== null && !Array.isArray(v);
    const out: RowInputs = {};
    if (named(value) && Array.isArray(value.inputs)) {
      for (const t of value.inputs as { name?: unknown; shape?: unknown; data?: unknown }[]) {
        const meta = inputs.find((m) => m.name === t.name);
        if (!meta) throw badRow(`the model has no input named ${JSON.stringify(t.name)}`);
        const shape = Array.isArray(t.shape) ? (t.shape as number[]) : undefined;
        const values = flat(t.data, meta.name);
        out[meta.name] = { shape: shape && shape[0] === 1 ? shape.slice(1) : rowShape(meta, values.length), values };
      }
    } else if (named(value) && inputs.every((m) => m.name in value)) {
      for (const meta of inputs) out[meta.name] = fromNested(value[meta.name], meta);
    } else if (inputs.length === 1 && (Array.isArray(value) || named(value))) {
      const meta = inputs[0]!;
      out[meta.name] = Array.isArray(value)
        ? fromNested(value, meta)
        : { shape: rowShape(meta, Object.keys(value).length), values: flat(Object.values(value), meta.name) };
    } else {
      throw badRow(`a row gives ${inputs.map((m) => m.name).join(', ')}: an object of them, or an array for one input`);
    }
    for (const meta of inputs) {
      const given = out[meta.name];
      if (!given) throw badRow(`the row has no ${meta.name}`);
      if (elementCount(given.shape) !== given.values.length)
        throw badRow(`${meta.name}: ${given.values.length} values do not fill the shape [${given.shape.join(', ')}]`);
    }
    return out;
  }
}

function fromNested(value: unknown, meta: TensorMetadata): { shape: number[]; values: number[] } {
  const shape: number[] = [];
  for (let v = value; Array.isArray(v); v = v[0]) shape.push(v.length);
  const values = flat(value, meta.name);
  // A flat list for an input of several dimensions: the model's fixed dimensions shape it.
  return { shape: shape.length === 1 ? rowShape(meta, values.length) : shape, values };
}

// The per-row shape of an input given `n` values: its fixed dimensions after the batch one, the free one filled.
function rowShape(meta: TensorMetadata, n: number): number[] {
  const dims = meta.shape.slice(1);
  if (dims.length <= 1) return dims.length === 0 ? [] : [n];
  const fixed = dims.filter((d) => d > 0).reduce((a, b) => a * b, 1);
  return dims.map((d) => (d > 0 ? d : Math.max(1, Math.floor(n / fixed))));
}

function flat(value: unknown, name: string): number[] {
  const out: number[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) for (const x of v) walk(x);
    else if (typeof v === 'number') out.push(v);
    else if (typeof v === 'boolean') out.push(v ? 1 : 0);
    else throw badRow(`${name}: ${JSON.stringify(v)} is not a number`);
  };
  walk(value);
  return out;
}

function badRow(message: string): NucleusError {
  return new NucleusError(400, 'invalid_row', message);
}

async function settle<T>(fn: () => Promise<T>): Promise<Settled<T>> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    return { ok: false, error: errorOf(err) };
  }
}

/** `{"row": n, "outputs": {...}}` with row `k` of every output, nested by its shape. */
function resultLine(row: number, outputs: Record<string, Tensor>, k: number): string {
  const parts: string[] = [];
  for (const [name, t] of Object.entries(outputs)) {
    const shape = t.shape.slice(1);
    const per = elementCount(shape);
    const slice = t.data.subarray(k * per, (k + 1) * per);
    parts.push(`${JSON.stringify(name)}:${JSON.stringify(nest(slice, shape))}`);
  }
  return `{"row":${row},"outputs":{${parts.join(',')}}}`;
}

function nest(data: ArrayLike<number | bigint>, shape: number[]): unknown {
  const at = (i: number): number => Number(data[i]!);
  if (shape.length === 0) return at(0);
  const build = (dim: number, offset: number): unknown[] => {
    const stride = elementCount(shape.slice(dim + 1));
    const out: unknown[] = [];
    for (let i = 0; i < shape[dim]!; i++)
      out.push(dim === shape.length - 1 ? at(offset + i) : build(dim + 1, offset + i * stride));
    return out;
  };
  return build(0, 0);
}

/** `{"row": n, "error": {...}}`: the `error` key right after `row`, so a scan can count error lines. */
export function errorLine(row: number, error: { code: string; message: string; status?: number }): string {
  return `{"row":${row},"error":${JSON.stringify(error)}}`;
}
