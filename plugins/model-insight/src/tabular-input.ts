import { badRequest, elementCount, type ModelVersionInfo, type Tensor } from '@nucleus/sdk';

/** The input of a tensor model that explanations and drift read as rows of features. */
export interface TabularInput {
  name: string;
  dtype: 'float32' | 'float64';
  /** Dimensions of one row (the input's shape without its batch dimension). */
  rowShape: number[];
  /** Values per row: the features. */
  width: number;
}

/**
 * The one floating-point input with a batch dimension that a model's rows are read from; 400 `not_explainable`
 * saying why a model has none (several inputs, an integer input, a dimension other than the batch left open).
 */
export function tabularInput(info: ModelVersionInfo, maxFeatures: number): TabularInput {
  const label = `model '${info.name}' version '${info.version}'`;
  if (info.inputs.length !== 1)
    throw badRequest(
      'not_explainable',
      `${label} takes ${info.inputs.length} inputs (${info.inputs.map((t) => t.name).join(', ')}); explanations and drift cover models with one feature input`,
    );
  const input = info.inputs[0]!;
  if (input.dtype !== 'float32' && input.dtype !== 'float64')
    throw badRequest(
      'not_explainable',
      `${label} takes ${input.dtype} for '${input.name}'; explanations and drift cover floating-point features`,
    );
  const rowShape = input.shape.slice(1);
  if (input.shape.length < 2 || rowShape.some((d) => d <= 0))
    throw badRequest(
      'not_explainable',
      `${label}'s input '${input.name}' has shape [${input.shape.join(',')}]; explanations need a batch dimension followed by fixed ones`,
    );
  const width = elementCount(rowShape);
  if (width > maxFeatures)
    throw badRequest(
      'too_many_features',
      `${label}'s input '${input.name}' holds ${width} values per row, more than the ${maxFeatures} features explained at most (plugin.model-insight.maxFeatures)`,
    );
  return { name: input.name, dtype: input.dtype, rowShape, width };
}

/** The rows of a tensor, `width` values each. */
export function rowsOf(tensor: Tensor, width: number): number[][] {
  const data = tensor.data as ArrayLike<number>;
  const rows: number[][] = [];
  for (let start = 0; start + width <= data.length; start += width)
    rows.push(Array.from({ length: width }, (_, j) => Number(data[start + j])));
  return rows;
}

/** Rows as the model's input tensor. */
export function tensorOf(input: TabularInput, rows: readonly (readonly number[])[]): Tensor {
  const data =
    input.dtype === 'float64'
      ? new Float64Array(rows.length * input.width)
      : new Float32Array(rows.length * input.width);
  rows.forEach((r, i) => data.set(r, i * input.width));
  return { dtype: input.dtype, shape: [rows.length, ...input.rowShape], data };
}

/** A value of a JSON body: a number, or null where it was missing (null, or not a number at all). */
export type Observed = number | null;

function flatten(value: unknown, out: Observed[]): void {
  if (Array.isArray(value)) for (const v of value) flatten(v, out);
  else if (typeof value === 'number') out.push(value);
  else if (typeof value === 'string' && /^[+-]?(nan|inf(inity)?)$/i.test(value)) out.push(Number.NaN);
  else out.push(null);
}

function chunk(values: Observed[], width: number): Observed[][] | undefined {
  if (values.length === 0 || values.length % width !== 0) return undefined;
  return Array.from({ length: values.length / width }, (_, i) => values.slice(i * width, (i + 1) * width));
}

/** The rows a native (`inputs: {name: ...}`) or KServe v2 (`inputs: [{name, data}]`) body gives `input`. */
export function observedRows(body: Record<string, unknown>, input: TabularInput): Observed[][] | undefined {
  const inputs = body.inputs;
  let data: unknown;
  if (Array.isArray(inputs)) {
    const t = inputs.find((i) => typeof i === 'object' && i !== null && (i as { name?: unknown }).name === input.name);
    data = (t as { data?: unknown } | undefined)?.data;
  } else if (typeof inputs === 'object' && inputs !== null) {
    const v = (inputs as Record<string, unknown>)[input.name];
    data = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as { data?: unknown }).data : v;
  }
  if (data === undefined) return undefined;
  const values: Observed[] = [];
  flatten(data, values);
  return chunk(values, input.width);
}

/** One row's prediction: a class (the arg max of a row of scores) or a value. */
export type Prediction = { kind: 'class'; index: number } | { kind: 'value'; value: number };

/**
 * The predictions in a native or KServe v2 answer, from `output` or, by default, the first output with several
 * values per row (class scores), else the first output.
 */
export function predictionsOf(answer: Record<string, unknown>, output?: string): Prediction[] {
  const outputs = answer.outputs;
  const found: Array<{ name: string; shape: number[]; data: unknown }> = [];
  if (Array.isArray(outputs)) {
    for (const o of outputs as Array<{ name?: unknown; shape?: unknown; data?: unknown }>)
      if (typeof o.name === 'string' && Array.isArray(o.shape))
        found.push({ name: o.name, shape: o.shape as number[], data: o.data });
  } else if (typeof outputs === 'object' && outputs !== null) {
    const shapes = (answer.shapes ?? {}) as Record<string, number[]>;
    for (const [name, data] of Object.entries(outputs as Record<string, unknown>))
      if (Array.isArray(shapes[name])) found.push({ name, shape: shapes[name]!, data });
  }
  const chosen =
    (output !== undefined ? found.find((o) => o.name === output) : undefined) ??
    found.find((o) => o.shape.length >= 2 && elementCount(o.shape.slice(1)) > 1) ??
    found[0];
  if (!chosen || chosen.shape.length === 0) return [];
  const values: Observed[] = [];
  flatten(chosen.data, values);
  const width = elementCount(chosen.shape.slice(1));
  const rows = chunk(values, width) ?? [];
  return rows.map((r) => {
    if (width === 1) return { kind: 'value', value: r[0] ?? Number.NaN };
    let best = 0;
    for (let c = 1; c < r.length; c++) if ((r[c] ?? -Infinity) > (r[best] ?? -Infinity)) best = c;
    return { kind: 'class', index: best };
  });
}
