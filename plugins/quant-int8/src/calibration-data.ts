import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { NucleusError } from '@nucleus/sdk';
import type { OnnxModel } from '@nucleus/sdk/onnx';

/** One input tensor of a sample, as ORT takes it. */
export interface SampleTensor {
  dtype: 'float32' | 'int64' | 'int32' | 'float64' | 'uint8' | 'int8' | 'bool';
  dims: number[];
  data: Float32Array | BigInt64Array | Int32Array | Float64Array | Uint8Array | Int8Array;
}

/** One set of inputs for the model: input name → tensor. */
export type Sample = Record<string, SampleTensor>;

/** The declared inputs of a graph (name, element type and rank), minus those fed by initializers. */
export function graphInputs(model: OnnxModel): { name: string; dtype: string; rank?: number }[] {
  const initializers = new Set(model.graph.initializers.map((t) => t.name));
  return model.graph.inputs
    .filter((i) => !initializers.has(i.name))
    .map((i) => {
      const t = i.type?.kind === 'tensor' ? i.type : undefined;
      return { name: i.name, dtype: t?.dtype ?? 'float32', ...(t?.shape && { rank: t.shape.length }) };
    });
}

const bad = (message: string): NucleusError => new NucleusError(400, 'invalid_calibration_data', message);

/**
 * Reads a sample set: a JSONL file (one JSON object a line, input name → nested array, or `{ dims, data }` with
 * `data` flat), a JSON file holding one such object or an array of them, or a folder of such files and of `.npy`
 * arrays (a `.npy` feeds a model with one input). A sample whose rank is one below the input's gets a batch axis of
 * 1. At most `max` samples are read, in file-name order.
 */
export function readSamples(path: string, model: OnnxModel, max = Infinity): Sample[] {
  const inputs = graphInputs(model);
  let files: string[];
  try {
    files = statSync(path).isDirectory()
      ? readdirSync(path)
          .filter((f) => ['.jsonl', '.json', '.npy'].includes(extname(f)))
          .sort()
          .map((f) => join(path, f))
      : [path];
  } catch (err) {
    throw bad(`calibration data ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const samples: Sample[] = [];
  for (const file of files) {
    if (samples.length >= max) break;
    if (extname(file) === '.npy') {
      if (inputs.length !== 1)
        throw bad(`${file}: a .npy array feeds a model with one input; this one has ${inputs.length}`);
      samples.push({ [inputs[0]!.name]: shaped(readNpy(file), inputs[0]!, file) });
      continue;
    }
    const text = readFileSync(file, 'utf8');
    const records: unknown[] = [];
    if (extname(file) === '.json') {
      const parsed = parseJson(text, file);
      records.push(...(Array.isArray(parsed) ? parsed : [parsed]));
    } else {
      text.split('\n').forEach((line, i) => {
        if (line.trim() !== '') records.push(parseJson(line, `${file}:${i + 1}`));
      });
    }
    for (const [i, record] of records.entries()) {
      if (samples.length >= max) break;
      samples.push(sampleOf(record, inputs, `${file} sample ${i + 1}`));
    }
  }
  if (samples.length === 0) throw bad(`calibration data ${path} holds no samples`);
  return samples;
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw bad(`${where}: not JSON (${(err as Error).message})`);
  }
}

function sampleOf(record: unknown, inputs: ReturnType<typeof graphInputs>, where: string): Sample {
  if (record === null || typeof record !== 'object' || Array.isArray(record))
    throw bad(`${where}: expected an object of input name → tensor`);
  const out: Sample = {};
  for (const input of inputs) {
    const value = (record as Record<string, unknown>)[input.name];
    if (value === undefined)
      throw bad(`${where}: no value for input "${input.name}" (inputs: ${inputs.map((i) => i.name).join(', ')})`);
    let dims: number[];
    let flat: number[];
    if (Array.isArray(value)) {
      dims = dimsOf(value, `${where}, input ${input.name}`);
      flat = (value as unknown[]).flat(Infinity) as number[];
    } else if (value && typeof value === 'object' && 'dims' in value && 'data' in value) {
      ({ dims, data: flat } = value as { dims: number[]; data: number[] });
      if (flat.length !== dims.reduce((a, b) => a * b, 1))
        throw bad(`${where}, input ${input.name}: ${flat.length} values do not fill dims [${dims.join(', ')}]`);
    } else throw bad(`${where}, input ${input.name}: expected a nested array or { dims, data }`);
    if (flat.some((v) => typeof v !== 'number' && typeof v !== 'boolean'))
      throw bad(`${where}, input ${input.name}: values must be numbers`);
    out[input.name] = shaped(typed(input.dtype, flat, `${where}, input ${input.name}`, dims), input, where);
  }
  return out;
}

function dimsOf(value: unknown, where: string): number[] {
  const dims: number[] = [];
  let v: unknown = value;
  while (Array.isArray(v)) {
    dims.push(v.length);
    v = v[0];
  }
  if (dims.reduce((a, b) => a * b, 1) !== (value as unknown[]).flat(Infinity).length)
    throw bad(`${where}: a ragged nested array`);
  return dims;
}

function typed(dtype: string, flat: number[], where: string, dims: number[]): SampleTensor {
  switch (dtype) {
    case 'float32':
      return { dtype, dims, data: Float32Array.from(flat) };
    case 'float64':
      return { dtype, dims, data: Float64Array.from(flat) };
    case 'int64':
      return { dtype, dims, data: BigInt64Array.from(flat, (v) => BigInt(Math.trunc(Number(v)))) };
    case 'int32':
      return { dtype, dims, data: Int32Array.from(flat) };
    case 'uint8':
    case 'bool':
      return { dtype, dims, data: Uint8Array.from(flat, Number) };
    case 'int8':
      return { dtype, dims, data: Int8Array.from(flat) };
    default:
      throw bad(`${where}: inputs of type ${dtype} cannot be read from calibration data`);
  }
}

function shaped(t: SampleTensor, input: { name: string; rank?: number }, where: string): SampleTensor {
  if (input.rank === undefined || t.dims.length === input.rank) return t;
  if (t.dims.length === input.rank - 1) return { ...t, dims: [1, ...t.dims] };
  throw bad(`${where}: input ${input.name} has rank ${t.dims.length}; the model takes rank ${input.rank}`);
}

// NumPy's .npy: magic, version, a little header dict (descr, fortran_order, shape), then the raw array.
function readNpy(file: string): SampleTensor {
  const bytes = readFileSync(file);
  if (bytes.subarray(0, 6).toString('latin1') !== '\x93NUMPY') throw bad(`${file}: not a .npy file`);
  const major = bytes[6]!;
  const headerLength = major === 1 ? bytes.readUInt16LE(8) : bytes.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = bytes.subarray(start, start + headerLength).toString('latin1');
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)?.[1];
  if (!descr || shape === undefined || /'fortran_order':\s*True/.test(header))
    throw bad(`${file}: unsupported .npy header ${header.trim()}`);
  const dims = shape
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const body = bytes.subarray(start + headerLength);
  const copy = new Uint8Array(body).buffer;
  const kinds: Record<string, () => SampleTensor> = {
    '<f4': () => ({ dtype: 'float32', dims, data: new Float32Array(copy) }),
    '<f8': () => ({ dtype: 'float64', dims, data: new Float64Array(copy) }),
    '<i8': () => ({ dtype: 'int64', dims, data: new BigInt64Array(copy) }),
    '<i4': () => ({ dtype: 'int32', dims, data: new Int32Array(copy) }),
    '|u1': () => ({ dtype: 'uint8', dims, data: new Uint8Array(copy) }),
  };
  const read = kinds[descr];
  if (!read) throw bad(`${file}: .npy arrays of ${descr} are not read (float32, float64, int64, int32, uint8 are)`);
  return read();
}
