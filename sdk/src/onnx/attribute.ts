import type { AttributeType, AttributeValue, Int64, OnnxGraph } from './graph-types.js';
import type { OnnxTensor } from './tensor.js';

/**
 * What builder calls accept for an attribute. Plain values are typed by shape: an integer number is
 * `int`, any other number `float`, `true`/`false` an `int`, an array of integers `ints`. A float
 * attribute whose value is whole (Gemm's `alpha: 1`) must be written `attr.float(1)`.
 */
export type AttributeInput =
  | AttributeValue
  | number
  | bigint
  | boolean
  | string
  | readonly number[]
  | readonly bigint[]
  | readonly string[]
  | OnnxTensor
  | OnnxGraph;

/** Constructors for explicitly typed attributes. */
export const attr = {
  /** A FLOAT attribute (use for whole-number floats such as `alpha: 1`). */
  float: (value: number): AttributeValue => ({ type: 'float', value }),
  /** An INT attribute. */
  int: (value: Int64): AttributeValue => ({ type: 'int', value }),
  /** A STRING attribute. */
  string: (value: string): AttributeValue => ({ type: 'string', value }),
  /** A TENSOR attribute (e.g. Constant's `value`). */
  tensor: (value: OnnxTensor): AttributeValue => ({ type: 'tensor', value }),
  /** A GRAPH attribute (a subgraph body for If/Loop/Scan). */
  graph: (value: OnnxGraph): AttributeValue => ({ type: 'graph', value }),
  /** A FLOATS attribute. */
  floats: (value: readonly number[]): AttributeValue => ({ type: 'floats', value: [...value] }),
  /** An INTS attribute. */
  ints: (value: readonly Int64[]): AttributeValue => ({ type: 'ints', value: [...value] }),
  /** A STRINGS attribute. */
  strings: (value: readonly string[]): AttributeValue => ({ type: 'strings', value: [...value] }),
  /** A TENSORS attribute. */
  tensors: (value: readonly OnnxTensor[]): AttributeValue => ({ type: 'tensors', value: [...value] }),
  /** A GRAPHS attribute. */
  graphs: (value: readonly OnnxGraph[]): AttributeValue => ({ type: 'graphs', value: [...value] }),
  /** An attribute that, inside a function body, takes the calling node's attribute `name`. */
  ref: (type: AttributeType, name: string): AttributeValue =>
    ({ type, value: emptyValue(type), refAttrName: name }) as AttributeValue,
};

function emptyValue(type: AttributeType): unknown {
  switch (type) {
    case 'float':
    case 'int':
      return 0;
    case 'string':
      return '';
    case 'floats':
    case 'ints':
    case 'strings':
    case 'tensors':
    case 'graphs':
    case 'sparseTensors':
    case 'typeProtos':
      return [];
    default:
      return undefined;
  }
}

const ATTRIBUTE_TYPES = new Set<string>([
  'float',
  'int',
  'string',
  'tensor',
  'sparseTensor',
  'graph',
  'typeProto',
  'floats',
  'ints',
  'strings',
  'tensors',
  'sparseTensors',
  'graphs',
  'typeProtos',
]);

function isAttributeValue(value: object): value is AttributeValue {
  const v = value as { type?: unknown };
  return typeof v.type === 'string' && ATTRIBUTE_TYPES.has(v.type) && 'value' in value;
}

/** Turns a builder-style attribute value into a typed `AttributeValue` (see `AttributeInput` for the rules). */
export function toAttribute(name: string, input: AttributeInput): AttributeValue {
  if (typeof input === 'number') return Number.isInteger(input) ? attr.int(input) : attr.float(input);
  if (typeof input === 'bigint') return attr.int(input);
  if (typeof input === 'boolean') return attr.int(input ? 1 : 0);
  if (typeof input === 'string') return attr.string(input);
  if (Array.isArray(input)) {
    const list = input as readonly unknown[];
    if (list.every((v) => typeof v === 'string'))
      return list.length === 0 ? attr.ints([]) : attr.strings(list as string[]);
    if (list.every((v) => typeof v === 'bigint' || (typeof v === 'number' && Number.isInteger(v)))) {
      return attr.ints(list as Int64[]);
    }
    if (list.every((v) => typeof v === 'number')) return attr.floats(list as number[]);
    throw new Error(`attribute ${name}: mixed array; use attr.ints/attr.floats/attr.strings`);
  }
  if (typeof input === 'object' && input !== null) {
    if (isAttributeValue(input)) return input;
    if ('dtype' in input && 'dims' in input) return attr.tensor(input);
    if ('nodes' in input && 'outputs' in input) return attr.graph(input);
  }
  throw new Error(`attribute ${name}: cannot tell the ONNX type of ${String(input)}`);
}
