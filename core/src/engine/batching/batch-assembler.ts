import {
  allocateTensorData,
  elementCount,
  NucleusError,
  type Tensor,
  type TensorData,
  type TensorDataType,
  type TensorMetadata,
} from '@nucleus/sdk';

/** Where each request's rows and lengths sit inside an assembled batch. */
export interface BatchLayout {
  /** First row of each request. */
  offsets: number[];
  rows: number[];
  /** Size of each named variable dimension (`sequence`) per request, for cutting padded outputs back. */
  dimSizes: Array<Map<string, number>>;
  totalRows: number;
}

/** A batch's inputs, where each request sits in them, and what the batch cost in padding. */
export interface AssembledBatch {
  inputs: Record<string, Tensor>;
  layout: BatchLayout;
  stats: BatchStats;
}

/** What one batch cost in padding, for the debug log. */
export interface BatchStats {
  requests: number;
  rows: number;
  /** Mean length along the first variable non-batch dimension (e.g. sequence length); undefined when there is none. */
  averageLength?: number;
  /** Share of the batch's input elements that are padding, 0 to 1. */
  paddingOverhead: number;
}

function strides(shape: readonly number[]): number[] {
  const out = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) out[i] = out[i + 1]! * shape[i + 1]!;
  return out;
}

function sameTail(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 1; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * A tensor array of `length` elements whose contents are left as they come (not zeroed), in a buffer of its own so
 * it can be transferred: for a batch that every request fills completely, zeroing would be wasted work.
 */
function uninitialized(dtype: TensorDataType, length: number): TensorData {
  const Ctor = allocateTensorData(dtype, 0).constructor as {
    new (buffer: ArrayBufferLike, offset: number, length: number): TensorData;
    BYTES_PER_ELEMENT: number;
  };
  const bytes = Buffer.allocUnsafeSlow(length * Ctor.BYTES_PER_ELEMENT);
  return new Ctor(bytes.buffer, bytes.byteOffset, length);
}

/** Copies `src` (shape `from`) into `dst` (shape `to`, every dim ≥) at the same indices, starting at `dst` row `row`. */
function copyInto(src: TensorData, from: readonly number[], dst: TensorData, to: readonly number[], row: number): void {
  const dstStrides = strides(to);
  if (from.length <= 1 || sameTail(from, to)) {
    (dst as Float32Array).set(src as Float32Array, row * (dstStrides[0] ?? 1));
    return;
  }
  const srcStrides = strides(from);
  const last = from.length - 1;
  const walk = (d: number, s: number, t: number): void => {
    if (d === last) {
      (dst as Float32Array).set((src as Float32Array).subarray(s, s + from[d]!), t);
      return;
    }
    for (let i = 0; i < from[d]!; i++) walk(d + 1, s + i * srcStrides[d]!, t + i * dstStrides[d]!);
  };
  walk(0, 0, row * dstStrides[0]!);
}

/** The block of `src` (shape `from`) starting at row `row` with shape `to` (every dim ≤), as a fresh array. */
function copyOut(src: TensorData, from: readonly number[], to: readonly number[], row: number): TensorData {
  const srcStrides = strides(from);
  const start = row * (srcStrides[0] ?? 1);
  if (from.length <= 1 || sameTail(from, to))
    return (src as Float32Array).slice(start, start + elementCount(to)) as TensorData;
  const out = (src as Float32Array).constructor as new (n: number) => Float32Array;
  const dst = new out(elementCount(to));
  const dstStrides = strides(to);
  const last = to.length - 1;
  const walk = (d: number, s: number, t: number): void => {
    if (d === last) {
      dst.set((src as Float32Array).subarray(s, s + to[d]!), t);
      return;
    }
    for (let i = 0; i < to[d]!; i++) walk(d + 1, s + i * srcStrides[d]!, t + i * dstStrides[d]!);
  };
  walk(0, start, 0);
  return dst as unknown as TensorData;
}

/**
 * Stacks requests along the batch dimension and splits the outputs back, exactly. With padding on, requests of
 * different lengths are padded with zeros to the longest (so an attention mask is 0 over the padding) and each
 * output is cut back along the dimensions that carry the request's own length.
 */
export class BatchAssembler {
  constructor(
    private readonly inputs: readonly TensorMetadata[],
    private readonly outputs: readonly TensorMetadata[],
    private readonly padding: boolean,
  ) {}

  /** Whether two validated requests can share a batch. */
  canJoin(a: Record<string, Tensor>, b: Record<string, Tensor>): boolean {
    for (const meta of this.inputs) {
      const x = a[meta.name]!.shape;
      const y = b[meta.name]!.shape;
      for (let i = 1; i < meta.shape.length; i++) {
        if (x[i] !== y[i] && !(this.padding && meta.shape[i] === -1)) return false;
      }
    }
    return true;
  }

  /** One set of model inputs holding every request, and where each one sits. */
  assemble(items: readonly Record<string, Tensor>[]): AssembledBatch {
    const steps = this.#build(items);
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
    }
  }

  /**
   * As {@link assemble}, but yields to the event loop after every `sliceBytes` copied: a batch of many large
   * tensors (32 images of 600 KB, where first touches of fresh memory dominate) would otherwise hold the loop for
   * tens of ms, and requests such as /health wait behind it.
   */
  async assembleInSlices(items: readonly Record<string, Tensor>[], sliceBytes: number): Promise<AssembledBatch> {
    const steps = this.#build(items);
    let copied = 0;
    for (;;) {
      const step = steps.next();
      if (step.done) return step.value;
      copied += step.value;
      if (copied >= sliceBytes) {
        copied = 0;
        await new Promise((resolve) => setImmediate(resolve));
      }
    }
  }

  // The assembly, one request's tensor at a time; yields the bytes each copy wrote.
  *#build(items: readonly Record<string, Tensor>[]): Generator<number, AssembledBatch> {
    const rows = items.map((item) => item[this.inputs[0]!.name]!.shape[0] ?? 1);
    const offsets: number[] = [];
    let totalRows = 0;
    for (const r of rows) {
      offsets.push(totalRows);
      totalRows += r;
    }
    const dimSizes = items.map((item) => {
      const sizes = new Map<string, number>();
      for (const meta of this.inputs)
        meta.dimNames.forEach((name, i) => i > 0 && name && sizes.set(name, item[meta.name]!.shape[i]!));
      return sizes;
    });
    let real = 0;
    let padded = 0;
    const inputs: Record<string, Tensor> = {};
    for (const meta of this.inputs) {
      const shapes = items.map((item) => item[meta.name]!.shape);
      const target = shapes[0]!.map((_d, i) => (i === 0 ? totalRows : Math.max(...shapes.map((s) => s[i]!))));
      const filled = shapes.every((shape) => sameTail(shape, target));
      const data = filled
        ? uninitialized(meta.dtype, elementCount(target))
        : allocateTensorData(meta.dtype, elementCount(target));
      for (const [k, item] of items.entries()) {
        const src = item[meta.name]!.data;
        copyInto(src, shapes[k]!, data, target, offsets[k]!);
        yield src.byteLength;
      }
      inputs[meta.name] = { dtype: meta.dtype, shape: target, data };
      real += shapes.reduce((n, s) => n + elementCount(s), 0);
      padded += data.length;
    }
    const lengthDim = this.inputs[0]!.shape.findIndex((d, i) => i > 0 && d === -1);
    const stats: BatchStats = {
      requests: items.length,
      rows: totalRows,
      ...(lengthDim > 0 && {
        averageLength:
          items.reduce(
            (n, item) =>
              n + item[this.inputs[0]!.name]!.shape[lengthDim]! * (item[this.inputs[0]!.name]!.shape[0] ?? 1),
            0,
          ) / Math.max(1, totalRows),
      }),
      paddingOverhead: padded === 0 ? 0 : 1 - real / padded,
    };
    return { inputs, layout: { offsets, rows, dimSizes, totalRows }, stats };
  }

  /** Each request's share of the batch outputs. */
  split(outputs: Record<string, Tensor>, layout: BatchLayout): Record<string, Tensor>[] {
    const out = layout.rows.map(() => ({}) as Record<string, Tensor>);
    for (const [name, t] of Object.entries(outputs)) {
      if (t.shape[0] !== layout.totalRows) {
        throw new NucleusError(
          500,
          'batch_split_failed',
          `output '${name}' has ${t.shape[0]} rows for a batch of ${layout.totalRows}; this model cannot be batched, set batching: false for it`,
        );
      }
      const meta = this.outputs.find((m) => m.name === name);
      layout.rows.forEach((rows, k) => {
        const shape = t.shape.map((d, i) => {
          if (i === 0) return rows;
          const dimName = meta?.dimNames[i];
          return dimName ? (layout.dimSizes[k]!.get(dimName) ?? d) : d;
        });
        out[k]![name] = { dtype: t.dtype, shape, data: copyOut(t.data, t.shape, shape, layout.offsets[k]!) };
      });
    }
    return out;
  }
}
