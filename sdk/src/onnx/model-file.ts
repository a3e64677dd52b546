import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, normalize, sep } from 'node:path';
import { elementCount, fromRawBytes } from './dtype.js';
import type { OnnxGraph } from './graph-types.js';
import { OnnxModel } from './onnx-model.js';
import { tensorBytes, type OnnxTensor } from './tensor.js';

/** How `saveModel` lays out a model on disk. */
export interface SaveModelOptions {
  /** Initializers of at least this many bytes go to the external data file. Omitted: everything stays inline. */
  externalDataThresholdBytes?: number;
  /** File name of the external data, next to the model. Default: the model's file name plus `.data`. */
  externalDataFile?: string;
  /** Each external tensor starts at a multiple of this many bytes (default 64), so readers can map it aligned. */
  alignment?: number;
}

/** What `saveModel` wrote. */
export interface SavedModel {
  modelPath: string;
  /** Absent when every tensor stayed inline. */
  externalDataPath?: string;
  modelBytes: number;
  externalDataBytes: number;
  /** Names of the initializers moved to the external file. */
  externalTensors: string[];
}

/**
 * Writes `model` to `path`; with `externalDataThresholdBytes`, large initializers go to one external data file
 * (ONNX's `location`/`offset`/`length` entries) so the protobuf stays small. The model object is not changed.
 */
export async function saveModel(path: string, model: OnnxModel, options: SaveModelOptions = {}): Promise<SavedModel> {
  const threshold = options.externalDataThresholdBytes;
  const alignment = options.alignment ?? 64;
  const dataFile = options.externalDataFile ?? `${basename(path)}.data`;
  for (const t of allTensors(model.graph)) {
    if (t.external) {
      throw new Error(`tensor ${t.name} still refers to ${t.external.location}: call loadExternalData before saving`);
    }
  }

  const chunks: Uint8Array[] = [];
  const moved: string[] = [];
  let offset = 0;
  const initializers = model.graph.initializers.map((t): OnnxTensor => {
    if (threshold === undefined || t.dtype === 'string') return t;
    const bytes = tensorBytes(t);
    if (bytes.byteLength < threshold || bytes.byteLength === 0) return t;
    const padding = (alignment - (offset % alignment)) % alignment;
    if (padding > 0) chunks.push(new Uint8Array(padding));
    offset += padding;
    chunks.push(bytes);
    moved.push(t.name);
    const out: OnnxTensor = { ...t, data: [], external: { location: dataFile, offset, length: bytes.byteLength } };
    offset += bytes.byteLength;
    return out;
  });

  const written = new OnnxModel({ ...model, graph: { ...model.graph, initializers } });
  const bytes = written.encode();
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, bytes);
  const result: SavedModel = {
    modelPath: path,
    modelBytes: bytes.byteLength,
    externalDataBytes: offset,
    externalTensors: moved,
  };
  if (moved.length > 0) {
    const externalDataPath = join(dirname(path), dataFile);
    await writeFile(externalDataPath, Buffer.concat(chunks));
    result.externalDataPath = externalDataPath;
  }
  return result;
}

/** Reads a model file and, unless `externalData: false`, the external data files it refers to. */
export async function loadModel(path: string, options: { externalData?: boolean } = {}): Promise<OnnxModel> {
  const model = OnnxModel.decode(await readFile(path));
  if (options.externalData !== false) await loadExternalData(model, dirname(path));
  return model;
}

/** Reads every externally stored tensor of `model` from files under `baseDir` into memory and clears its `external` reference. */
export async function loadExternalData(model: OnnxModel, baseDir: string): Promise<void> {
  const files = new Map<string, Promise<Buffer>>();
  for (const t of allTensors(model.graph)) {
    const ref = t.external;
    if (!ref) continue;
    const path = resolveInside(baseDir, ref.location);
    let file = files.get(path);
    if (!file) {
      file = readFile(path);
      files.set(path, file);
    }
    const buffer = await file;
    if (ref.offset + ref.length > buffer.byteLength) {
      throw new Error(
        `tensor ${t.name}: ${ref.location} has ${buffer.byteLength} bytes, needs ${ref.offset + ref.length}`,
      );
    }
    t.data = fromRawBytes(t.dtype, buffer.subarray(ref.offset, ref.offset + ref.length), elementCount(t.dims));
    delete t.external;
  }
}

// ONNX forbids locations that leave the model's folder; so does ORT.
function resolveInside(baseDir: string, location: string): string {
  const rel = normalize(location);
  if (isAbsolute(rel) || rel === '..' || rel.startsWith(`..${sep}`)) {
    throw new Error(`external data location ${location} is outside the model's folder`);
  }
  return join(baseDir, rel);
}

/** Every tensor in a graph: initializers, sparse parts and tensor attributes, subgraphs included. */
function* allTensors(graph: OnnxGraph): Generator<OnnxTensor> {
  yield* graph.initializers;
  for (const s of graph.sparseInitializers) yield* [s.values, s.indices];
  for (const node of graph.nodes) {
    for (const a of Object.values(node.attributes)) {
      if (a.type === 'tensor') yield a.value;
      else if (a.type === 'tensors') yield* a.value;
      else if (a.type === 'graph') yield* allTensors(a.value);
      else if (a.type === 'graphs') for (const g of a.value) yield* allTensors(g);
    }
  }
}
