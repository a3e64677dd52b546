import {
  allocate,
  dtypeFromCode,
  dtypeToCode,
  elementCount,
  fromRawBytes,
  rawByteLength,
  storageLength,
  type DType,
  type NumericArray,
} from './dtype.js';
import type {
  AttributeType,
  AttributeValue,
  Dim,
  Int64,
  OnnxFunction,
  OnnxGraph,
  OnnxNode,
  OpsetImports,
  SparseTensor,
  TensorAnnotation,
  ValueInfo,
  ValueType,
} from './graph-types.js';
import { AttributeTypeCode, DATA_LOCATION_EXTERNAL, ModelProto } from './onnx-proto.js';
import { tensorBytes, type OnnxTensor } from './tensor.js';

// Converts between the plain structures of this library and the protobufjs message objects.
// Encoding writes numeric tensors as raw_data: the fast path readers take, and a straight copy here.
// Raw data is little-endian by the spec; typed arrays are host-endian, and every host Node runs on today is LE.

/** The fields of a model, as `OnnxModel` holds them. */
export interface ModelData {
  irVersion: number;
  opsets: OpsetImports;
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString?: string;
  graph: OnnxGraph;
  metadataProps: Record<string, string>;
  functions: OnnxFunction[];
}

type Msg = Record<string, unknown>;
type LongLike = { low: number; high: number };

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

// ---------- int64 helpers ----------

function int64Out(v: Int64): number | string {
  if (typeof v === 'bigint')
    return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (!Number.isInteger(v)) throw new Error(`${v} is not an integer`);
  return v;
}

function toBigInt(v: unknown, unsigned = false): bigint {
  if (typeof v === 'number') return BigInt(v);
  if (typeof v === 'bigint') return v;
  if (typeof v === 'string') return BigInt(v);
  const l = v as LongLike;
  const n = (BigInt(l.high >>> 0) << 32n) | BigInt(l.low >>> 0);
  return unsigned ? n : BigInt.asIntN(64, n);
}

function toInt64(v: unknown): Int64 {
  const n = toBigInt(v);
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n;
}

function toSafeNumber(v: unknown, what: string): number {
  const n = toInt64(v);
  if (typeof n === 'bigint') throw new Error(`${what} ${n} does not fit a JavaScript number`);
  return n;
}

function entriesOut(record: Record<string, string> | undefined): Msg[] {
  return Object.entries(record ?? {}).map(([key, value]) => ({ key, value }));
}

function entriesIn(list: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of (list as { key: string; value: string }[]) ?? []) out[e.key] = e.value;
  return out;
}

function nonEmpty(s: unknown): string | undefined {
  return typeof s === 'string' && s.length > 0 ? s : undefined;
}

// ---------- encode ----------

function encodeTensor(t: OnnxTensor): Msg {
  const m: Msg = { name: t.name, dims: t.dims.map(int64Out), data_type: dtypeToCode(t.dtype) };
  if (t.docString) m.doc_string = t.docString;
  if (t.external) {
    m.data_location = DATA_LOCATION_EXTERNAL;
    const entries: Record<string, string> = {
      location: t.external.location,
      offset: String(t.external.offset),
      length: String(t.external.length),
    };
    if (t.external.checksum) entries.checksum = t.external.checksum;
    m.external_data = entriesOut(entries);
    return m;
  }
  const expected = storageLength(t.dtype, elementCount(t.dims));
  if (t.data.length !== expected) {
    throw new Error(`tensor ${t.name}: dims [${t.dims.join(', ')}] need ${expected} values, got ${t.data.length}`);
  }
  if (t.dtype === 'string') m.string_data = (t.data as string[]).map((s) => utf8.encode(s));
  else m.raw_data = tensorBytes(t);
  return m;
}

function encodeSparse(s: SparseTensor): Msg {
  return { values: encodeTensor(s.values), indices: encodeTensor(s.indices), dims: s.dims.map(int64Out) };
}

function encodeShape(shape: Dim[] | undefined): Msg | undefined {
  if (shape === undefined) return undefined;
  return {
    dim: shape.map((d) => (d === null ? {} : typeof d === 'string' ? { dim_param: d } : { dim_value: int64Out(d) })),
  };
}

function encodeType(t: ValueType): Msg {
  const m: Msg = {};
  if (t.denotation) m.denotation = t.denotation;
  switch (t.kind) {
    case 'tensor':
      m.tensor_type = { elem_type: dtypeToCode(t.dtype), shape: encodeShape(t.shape) };
      break;
    case 'sparseTensor':
      m.sparse_tensor_type = { elem_type: dtypeToCode(t.dtype), shape: encodeShape(t.shape) };
      break;
    case 'sequence':
      m.sequence_type = { elem_type: encodeType(t.elem) };
      break;
    case 'optional':
      m.optional_type = { elem_type: encodeType(t.elem) };
      break;
    case 'map':
      m.map_type = { key_type: dtypeToCode(t.keyType), value_type: encodeType(t.value) };
      break;
    case 'opaque':
      m.opaque_type = { domain: t.domain, name: t.name };
      break;
  }
  return m;
}

function encodeValueInfo(v: ValueInfo): Msg {
  const m: Msg = { name: v.name };
  if (v.type) m.type = encodeType(v.type);
  if (v.docString) m.doc_string = v.docString;
  return m;
}

function encodeAttribute(name: string, a: AttributeValue): Msg {
  const m: Msg = { name, type: AttributeTypeCode[a.type] };
  if (a.docString) m.doc_string = a.docString;
  if (a.refAttrName) {
    m.ref_attr_name = a.refAttrName;
    return m;
  }
  switch (a.type) {
    case 'float':
      m.f = a.value;
      break;
    case 'int':
      m.i = int64Out(a.value);
      break;
    case 'string':
      m.s = utf8.encode(a.value);
      break;
    case 'tensor':
      m.t = encodeTensor(a.value);
      break;
    case 'sparseTensor':
      m.sparse_tensor = encodeSparse(a.value);
      break;
    case 'graph':
      m.g = encodeGraph(a.value);
      break;
    case 'typeProto':
      m.tp = encodeType(a.value);
      break;
    case 'floats':
      m.floats = a.value;
      break;
    case 'ints':
      m.ints = a.value.map(int64Out);
      break;
    case 'strings':
      m.strings = a.value.map((s) => utf8.encode(s));
      break;
    case 'tensors':
      m.tensors = a.value.map(encodeTensor);
      break;
    case 'sparseTensors':
      m.sparse_tensors = a.value.map(encodeSparse);
      break;
    case 'graphs':
      m.graphs = a.value.map(encodeGraph);
      break;
    case 'typeProtos':
      m.type_protos = a.value.map(encodeType);
      break;
  }
  return m;
}

function encodeNode(n: OnnxNode): Msg {
  const m: Msg = {
    input: n.inputs,
    output: n.outputs,
    op_type: n.opType,
    attribute: Object.entries(n.attributes).map(([k, v]) => encodeAttribute(k, v)),
  };
  if (n.name) m.name = n.name;
  if (n.domain) m.domain = n.domain;
  if (n.docString) m.doc_string = n.docString;
  if (n.overload) m.overload = n.overload;
  return m;
}

function encodeAnnotation(a: TensorAnnotation): Msg {
  return { tensor_name: a.tensorName, quant_parameter_tensor_names: entriesOut(a.quantParameterTensorNames) };
}

function encodeGraph(g: OnnxGraph): Msg {
  const m: Msg = {
    name: g.name,
    node: g.nodes.map(encodeNode),
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    initializer: g.initializers.map(encodeTensor),
    sparse_initializer: g.sparseInitializers.map(encodeSparse),
    value_info: g.valueInfo.map(encodeValueInfo),
    quantization_annotation: g.quantizationAnnotations.map(encodeAnnotation),
    metadata_props: entriesOut(g.metadataProps),
  };
  if (g.docString) m.doc_string = g.docString;
  return m;
}

function encodeOpsets(opsets: OpsetImports): Msg[] {
  return Object.entries(opsets).map(([domain, version]) => ({ domain, version: int64Out(version) }));
}

function encodeFunction(f: OnnxFunction): Msg {
  const m: Msg = {
    name: f.name,
    domain: f.domain,
    input: f.inputs,
    output: f.outputs,
    attribute: f.attributes,
    attribute_proto: Object.entries(f.attributeDefaults).map(([k, v]) => encodeAttribute(k, v)),
    node: f.nodes.map(encodeNode),
    opset_import: encodeOpsets(f.opsets),
    value_info: f.valueInfo.map(encodeValueInfo),
  };
  if (f.overload) m.overload = f.overload;
  if (f.docString) m.doc_string = f.docString;
  return m;
}

/** Serialises a model to ONNX protobuf bytes. */
export function encodeModelData(model: ModelData): Uint8Array {
  const m: Msg = {
    ir_version: model.irVersion,
    opset_import: encodeOpsets(model.opsets),
    producer_name: model.producerName,
    producer_version: model.producerVersion,
    domain: model.domain,
    model_version: model.modelVersion,
    graph: encodeGraph(model.graph),
    metadata_props: entriesOut(model.metadataProps),
    functions: model.functions.map(encodeFunction),
  };
  if (model.docString) m.doc_string = model.docString;
  return ModelProto.encode(m).finish();
}

// ---------- decode ----------

function decodeTensor(m: Msg): OnnxTensor {
  const name = (m.name as string) ?? '';
  const dtype = dtypeFromCode(m.data_type as number);
  const dims = ((m.dims as unknown[]) ?? []).map((d) => toSafeNumber(d, `tensor ${name} dim`));
  const count = elementCount(dims);
  const t: OnnxTensor = { name, dtype, dims, data: allocate(dtype, 0) };
  const doc = nonEmpty(m.doc_string);
  if (doc) t.docString = doc;
  if (m.data_location === DATA_LOCATION_EXTERNAL) {
    const e = entriesIn(m.external_data);
    if (e.location === undefined) throw new Error(`tensor ${name}: external data without a location`);
    const length = e.length !== undefined ? Number(e.length) : undefined;
    t.external = {
      location: e.location,
      offset: e.offset !== undefined ? Number(e.offset) : 0,
      // A missing length means "to the end of the file"; the raw size is what that must be.
      length: length ?? (dtype === 'string' ? 0 : rawByteLength(dtype, count)),
    };
    if (e.checksum) t.external.checksum = e.checksum;
    return t;
  }
  const raw = m.raw_data as Uint8Array | undefined;
  if (raw && raw.byteLength > 0) {
    t.data = fromRawBytes(dtype, raw, count);
    return t;
  }
  t.data = fromTypedFields(name, dtype, m, count);
  return t;
}

function fromTypedFields(name: string, dtype: DType, m: Msg, count: number): OnnxTensor['data'] {
  const need = storageLength(dtype, count);
  const check = (list: unknown[] | undefined, field: string): unknown[] => {
    const l = list ?? [];
    if (l.length !== need) throw new Error(`tensor ${name}: ${field} has ${l.length} values, dims need ${need}`);
    return l;
  };
  switch (dtype) {
    case 'string':
      return check(m.string_data as Uint8Array[], 'string_data').map((b) => fromUtf8.decode(b as Uint8Array));
    case 'float32':
      return Float32Array.from(check(m.float_data as number[], 'float_data') as number[]);
    case 'float64':
      return Float64Array.from(check(m.double_data as number[], 'double_data') as number[]);
    case 'int64':
      return BigInt64Array.from(check(m.int64_data as unknown[], 'int64_data').map((v) => toBigInt(v)));
    case 'uint64':
      return BigUint64Array.from(check(m.uint64_data as unknown[], 'uint64_data').map((v) => toBigInt(v, true)));
    case 'uint32':
      return Uint32Array.from(check(m.uint64_data as unknown[], 'uint64_data').map((v) => Number(toBigInt(v, true))));
    default: {
      // int32_data carries every narrower integer type, 16-bit floats as bits, and 8-bit floats.
      const out = allocate(dtype, count) as NumericArray;
      const src = check(m.int32_data as number[], 'int32_data') as number[];
      for (let i = 0; i < src.length; i++) (out as Int32Array)[i] = src[i]!;
      return out;
    }
  }
}

function decodeSparse(m: Msg): SparseTensor {
  return {
    values: decodeTensor(m.values as Msg),
    indices: decodeTensor(m.indices as Msg),
    dims: ((m.dims as unknown[]) ?? []).map((d) => toSafeNumber(d, 'sparse tensor dim')),
  };
}

function decodeShape(m: Msg | null | undefined): Dim[] | undefined {
  if (!m) return undefined;
  // Decoded messages carry only the fields that were on the wire as own properties.
  return ((m.dim as Msg[]) ?? []).map((d) => {
    if (Object.hasOwn(d, 'dim_value')) return toSafeNumber(d.dim_value, 'dim');
    if (Object.hasOwn(d, 'dim_param')) return d.dim_param as string;
    return null;
  });
}

function decodeType(m: Msg): ValueType {
  const denotation = nonEmpty(m.denotation);
  const withDenotation = (t: ValueType): ValueType => (denotation ? { ...t, denotation } : t);
  if (m.tensor_type) {
    const tt = m.tensor_type as Msg;
    const shape = decodeShape(tt.shape as Msg | null);
    const t: ValueType = { kind: 'tensor', dtype: dtypeFromCode(tt.elem_type as number) };
    if (shape) t.shape = shape;
    return withDenotation(t);
  }
  if (m.sparse_tensor_type) {
    const tt = m.sparse_tensor_type as Msg;
    const shape = decodeShape(tt.shape as Msg | null);
    const t: ValueType = { kind: 'sparseTensor', dtype: dtypeFromCode(tt.elem_type as number) };
    if (shape) t.shape = shape;
    return withDenotation(t);
  }
  if (m.sequence_type)
    return withDenotation({ kind: 'sequence', elem: decodeType((m.sequence_type as Msg).elem_type as Msg) });
  if (m.optional_type)
    return withDenotation({ kind: 'optional', elem: decodeType((m.optional_type as Msg).elem_type as Msg) });
  if (m.map_type) {
    const mt = m.map_type as Msg;
    return withDenotation({
      kind: 'map',
      keyType: dtypeFromCode(mt.key_type as number),
      value: decodeType(mt.value_type as Msg),
    });
  }
  if (m.opaque_type) {
    const ot = m.opaque_type as Msg;
    return withDenotation({ kind: 'opaque', domain: ot.domain as string, name: ot.name as string });
  }
  throw new Error('type with no value');
}

function decodeValueInfo(m: Msg): ValueInfo {
  const v: ValueInfo = { name: m.name as string };
  if (m.type) v.type = decodeType(m.type as Msg);
  const doc = nonEmpty(m.doc_string);
  if (doc) v.docString = doc;
  return v;
}

const typeByCode = new Map<number, AttributeType>(
  Object.entries(AttributeTypeCode).map(([k, v]) => [v, k as AttributeType]),
);

// IR version 1 models may leave `type` unset: the populated field tells.
function inferAttributeType(m: Msg): AttributeType {
  const has = (k: string): boolean => Object.hasOwn(m, k) && m[k] !== null;
  const hasList = (k: string): boolean => Array.isArray(m[k]) && (m[k] as unknown[]).length > 0;
  if (has('f')) return 'float';
  if (has('i')) return 'int';
  if (has('s')) return 'string';
  if (has('t')) return 'tensor';
  if (has('g')) return 'graph';
  if (hasList('floats')) return 'floats';
  if (hasList('ints')) return 'ints';
  if (hasList('strings')) return 'strings';
  if (hasList('tensors')) return 'tensors';
  if (hasList('graphs')) return 'graphs';
  throw new Error(`attribute ${String(m.name)} has no type and no value`);
}

function decodeAttribute(m: Msg): AttributeValue {
  const code = m.type as number;
  const type = code ? typeByCode.get(code) : inferAttributeType(m);
  if (!type) throw new Error(`attribute ${String(m.name)}: unknown attribute type ${code}`);
  const list = <T>(k: string): T[] => (m[k] as T[]) ?? [];
  let a: AttributeValue;
  switch (type) {
    case 'float':
      a = { type, value: m.f as number };
      break;
    case 'int':
      a = { type, value: toInt64(m.i) };
      break;
    case 'string':
      a = { type, value: fromUtf8.decode((m.s as Uint8Array) ?? new Uint8Array(0)) };
      break;
    case 'tensor':
      a = { type, value: decodeTensor(m.t as Msg) };
      break;
    case 'sparseTensor':
      a = { type, value: decodeSparse(m.sparse_tensor as Msg) };
      break;
    case 'graph':
      a = { type, value: decodeGraph(m.g as Msg) };
      break;
    case 'typeProto':
      a = { type, value: decodeType(m.tp as Msg) };
      break;
    case 'floats':
      a = { type, value: [...list<number>('floats')] };
      break;
    case 'ints':
      a = { type, value: list<unknown>('ints').map(toInt64) };
      break;
    case 'strings':
      a = { type, value: list<Uint8Array>('strings').map((b) => fromUtf8.decode(b)) };
      break;
    case 'tensors':
      a = { type, value: list<Msg>('tensors').map(decodeTensor) };
      break;
    case 'sparseTensors':
      a = { type, value: list<Msg>('sparse_tensors').map(decodeSparse) };
      break;
    case 'graphs':
      a = { type, value: list<Msg>('graphs').map(decodeGraph) };
      break;
    case 'typeProtos':
      a = { type, value: list<Msg>('type_protos').map(decodeType) };
      break;
  }
  const ref = nonEmpty(m.ref_attr_name);
  if (ref) a.refAttrName = ref;
  const doc = nonEmpty(m.doc_string);
  if (doc) a.docString = doc;
  return a;
}

function decodeNode(m: Msg): OnnxNode {
  const attributes: Record<string, AttributeValue> = {};
  for (const a of (m.attribute as Msg[]) ?? []) attributes[a.name as string] = decodeAttribute(a);
  const n: OnnxNode = {
    name: (m.name as string) ?? '',
    opType: m.op_type as string,
    domain: (m.domain as string) ?? '',
    inputs: [...((m.input as string[]) ?? [])],
    outputs: [...((m.output as string[]) ?? [])],
    attributes,
  };
  const doc = nonEmpty(m.doc_string);
  if (doc) n.docString = doc;
  const overload = nonEmpty(m.overload);
  if (overload) n.overload = overload;
  return n;
}

function decodeGraph(m: Msg): OnnxGraph {
  const g: OnnxGraph = {
    name: (m.name as string) ?? '',
    nodes: ((m.node as Msg[]) ?? []).map(decodeNode),
    inputs: ((m.input as Msg[]) ?? []).map(decodeValueInfo),
    outputs: ((m.output as Msg[]) ?? []).map(decodeValueInfo),
    initializers: ((m.initializer as Msg[]) ?? []).map(decodeTensor),
    sparseInitializers: ((m.sparse_initializer as Msg[]) ?? []).map(decodeSparse),
    valueInfo: ((m.value_info as Msg[]) ?? []).map(decodeValueInfo),
    quantizationAnnotations: ((m.quantization_annotation as Msg[]) ?? []).map((a) => ({
      tensorName: a.tensor_name as string,
      quantParameterTensorNames: entriesIn(a.quant_parameter_tensor_names),
    })),
  };
  const doc = nonEmpty(m.doc_string);
  if (doc) g.docString = doc;
  const props = entriesIn(m.metadata_props);
  if (Object.keys(props).length > 0) g.metadataProps = props;
  return g;
}

function decodeOpsets(list: unknown): OpsetImports {
  const out: OpsetImports = {};
  for (const o of (list as Msg[]) ?? []) out[(o.domain as string) ?? ''] = toSafeNumber(o.version, 'opset version');
  return out;
}

function decodeFunction(m: Msg): OnnxFunction {
  const attributeDefaults: Record<string, AttributeValue> = {};
  for (const a of (m.attribute_proto as Msg[]) ?? []) attributeDefaults[a.name as string] = decodeAttribute(a);
  const f: OnnxFunction = {
    name: m.name as string,
    domain: (m.domain as string) ?? '',
    inputs: [...((m.input as string[]) ?? [])],
    outputs: [...((m.output as string[]) ?? [])],
    attributes: [...((m.attribute as string[]) ?? [])],
    attributeDefaults,
    nodes: ((m.node as Msg[]) ?? []).map(decodeNode),
    opsets: decodeOpsets(m.opset_import),
    valueInfo: ((m.value_info as Msg[]) ?? []).map(decodeValueInfo),
  };
  const overload = nonEmpty(m.overload);
  if (overload) f.overload = overload;
  const doc = nonEmpty(m.doc_string);
  if (doc) f.docString = doc;
  return f;
}

/** Parses ONNX protobuf bytes. External tensors come back with `external` set and empty `data`. */
export function decodeModelData(bytes: Uint8Array): ModelData {
  const m = ModelProto.decode(bytes) as unknown as Msg;
  if (!m.graph) throw new Error('not an ONNX model: no graph');
  const model: ModelData = {
    irVersion: toSafeNumber(m.ir_version, 'ir_version'),
    opsets: decodeOpsets(m.opset_import),
    producerName: (m.producer_name as string) ?? '',
    producerVersion: (m.producer_version as string) ?? '',
    domain: (m.domain as string) ?? '',
    modelVersion: toSafeNumber(m.model_version, 'model_version'),
    graph: decodeGraph(m.graph as Msg),
    metadataProps: entriesIn(m.metadata_props),
    functions: ((m.functions as Msg[]) ?? []).map(decodeFunction),
  };
  const doc = nonEmpty(m.doc_string);
  if (doc) model.docString = doc;
  return model;
}
