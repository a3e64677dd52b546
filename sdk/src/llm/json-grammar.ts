import { badRequest } from '../errors.js';

/**
 * A JSON Schema compiled for constrained decoding: what may come next, one character at a time. Output is compact JSON
 * (no whitespace) with properties in the schema's order; properties a schema allows but does not declare are never
 * generated. Lengths a schema leaves open are capped (strings, arrays, digits, free objects), so every value can end
 * within a bounded number of characters: a model cannot ramble inside a string until `max_tokens` cuts the JSON.
 */
export type JsonNode =
  | { kind: 'literal'; text: string }
  | { kind: 'alt'; options: JsonNode[] }
  | { kind: 'string'; minLength: number; maxLength: number }
  | { kind: 'number'; integer: boolean }
  | { kind: 'object'; properties: JsonProperty[]; free?: { key: JsonNode; value: JsonNode; max: number } }
  | { kind: 'array'; items: JsonNode; minItems: number; maxItems: number };

/** A declared property: its key as it is written (`"name":`), its value, and whether it must be there. */
export interface JsonProperty {
  key: string;
  node: JsonNode;
  required: boolean;
}

/** Caps on what a schema leaves unbounded (the output still validates: these only narrow it). */
const CAP = { string: 48, items: 8, freeKeys: 4, freeKeyLength: 12, intDigits: 9, fracDigits: 4, anyDepth: 2 };
/** Values no schema describes (`json_object`, an untyped property) are kept smaller still. */
const FREE = { string: 16, items: 4 };

/** Keywords that change nothing about valid output. */
const ANNOTATIONS = new Set([
  'title',
  'description',
  'default',
  'examples',
  '$schema',
  '$id',
  '$comment',
  'deprecated',
  'readOnly',
  'writeOnly',
  // Definitions only a $ref would use, and $ref is refused.
  '$defs',
  'definitions',
]);

/** Keywords the compiler enforces. */
const SUPPORTED = new Set([
  'type',
  'properties',
  'required',
  'additionalProperties',
  'items',
  'minItems',
  'maxItems',
  'enum',
  'const',
  'anyOf',
  'oneOf',
  'minLength',
  'maxLength',
]);

/**
 * Compiles a JSON Schema for {@link JsonMatcher}. Throws 400 `unsupported_schema` naming the keyword and where it is
 * for what constrained decoding cannot guarantee (pattern, format, numeric bounds, $ref …), so a request is refused
 * rather than answered with output that might not validate. `param` names the request field in the error.
 */
export function compileJsonSchema(schema: unknown, param = 'response_format'): JsonNode {
  return compile(schema, '#', param, 0);
}

function unsupported(param: string, message: string): Error {
  return badRequest(
    'unsupported_schema',
    `${message}; constrained decoding supports ${[...SUPPORTED].join(', ')}`,
    param,
  );
}

function compile(schema: unknown, path: string, param: string, depth: number): JsonNode {
  if (schema === true || (isObject(schema) && Object.keys(schema).every((k) => ANNOTATIONS.has(k))))
    return anyValue(CAP.anyDepth);
  if (!isObject(schema)) throw badRequest('invalid_schema', `the schema at ${path} must be an object or true`, param);
  if (depth > 32) throw unsupported(param, `the schema nests deeper than 32 levels at ${path}`);
  for (const key of Object.keys(schema))
    if (!SUPPORTED.has(key) && !ANNOTATIONS.has(key))
      throw unsupported(param, `the schema keyword '${key}' at ${path} is not supported`);
  if (schema.const !== undefined) return { kind: 'literal', text: JSON.stringify(schema.const) };
  if (Array.isArray(schema.enum)) {
    if (schema.enum.length === 0) throw badRequest('invalid_schema', `'enum' at ${path} is empty`, param);
    return alt(schema.enum.map((v) => ({ kind: 'literal', text: JSON.stringify(v) }) as JsonNode));
  }
  const branches = (schema.anyOf ?? schema.oneOf) as unknown;
  if (branches !== undefined) {
    if (!Array.isArray(branches) || branches.length === 0)
      throw badRequest('invalid_schema', `'anyOf'/'oneOf' at ${path} must be a non-empty list`, param);
    if (schema.type !== undefined || schema.properties !== undefined || schema.items !== undefined)
      throw unsupported(param, `'anyOf'/'oneOf' beside other constraints at ${path} is not supported`);
    return alt(branches.map((b, i) => compile(b, `${path}/anyOf/${i}`, param, depth + 1)));
  }
  const type = schema.type;
  if (type === undefined) {
    if (schema.properties !== undefined) return compileTyped('object', schema, path, param, depth);
    if (schema.items !== undefined) return compileTyped('array', schema, path, param, depth);
    return anyValue(CAP.anyDepth);
  }
  if (Array.isArray(type)) return alt(type.map((t) => compileTyped(String(t), schema, path, param, depth)));
  return compileTyped(String(type), schema, path, param, depth);
}

function compileTyped(
  type: string,
  schema: Record<string, unknown>,
  path: string,
  param: string,
  depth: number,
): JsonNode {
  switch (type) {
    case 'null':
      return { kind: 'literal', text: 'null' };
    case 'boolean':
      return alt([
        { kind: 'literal', text: 'true' },
        { kind: 'literal', text: 'false' },
      ]);
    case 'integer':
    case 'number':
      return { kind: 'number', integer: type === 'integer' };
    case 'string': {
      const minLength = count(schema.minLength, 0);
      const maxLength = Math.max(
        minLength,
        Math.min(count(schema.maxLength, Infinity), Math.max(CAP.string, minLength)),
      );
      return { kind: 'string', minLength, maxLength };
    }
    case 'array': {
      const minItems = count(schema.minItems, 0);
      const maxItems = Math.max(minItems, Math.min(count(schema.maxItems, Infinity), Math.max(CAP.items, minItems)));
      const items =
        schema.items === undefined
          ? anyValue(CAP.anyDepth - 1)
          : compile(schema.items, `${path}/items`, param, depth + 1);
      return { kind: 'array', items, minItems, maxItems };
    }
    case 'object': {
      const props = isObject(schema.properties) ? schema.properties : undefined;
      const required = Array.isArray(schema.required) ? schema.required.map(String) : [];
      if (props === undefined || Object.keys(props).length === 0) {
        if (required.length > 0)
          throw unsupported(param, `'required' without 'properties' at ${path} is not supported`);
        if (schema.additionalProperties === false) return { kind: 'literal', text: '{}' };
        const value =
          isObject(schema.additionalProperties) || schema.additionalProperties === true
            ? compile(schema.additionalProperties, `${path}/additionalProperties`, param, depth + 1)
            : anyValue(CAP.anyDepth - 1);
        return { kind: 'object', properties: [], free: freeEntries(value) };
      }
      const missing = required.find((r) => !(r in props));
      if (missing !== undefined)
        throw unsupported(param, `required property '${missing}' at ${path} has no schema in 'properties'`);
      const properties = Object.entries(props).map(([key, sub]) => ({
        key: `${JSON.stringify(key)}:`,
        node: compile(sub, `${path}/properties/${key}`, param, depth + 1),
        required: required.includes(key),
      }));
      return { kind: 'object', properties };
    }
    default:
      throw badRequest(
        'invalid_schema',
        `'type' at ${path} must be a JSON Schema type, not ${JSON.stringify(type)}`,
        param,
      );
  }
}

function count(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 ? v : fallback;
}

function alt(options: JsonNode[]): JsonNode {
  return options.length === 1 ? options[0]! : { kind: 'alt', options };
}

function freeEntries(value: JsonNode): { key: JsonNode; value: JsonNode; max: number } {
  return { key: { kind: 'string', minLength: 1, maxLength: CAP.freeKeyLength }, value, max: CAP.freeKeys };
}

const anyCache = new Map<number, JsonNode>();

/** Any JSON value, nesting at most `depth` more objects or arrays. */
function anyValue(depth: number): JsonNode {
  let node = anyCache.get(depth);
  if (node) return node;
  const scalars: JsonNode[] = [
    { kind: 'string', minLength: 0, maxLength: FREE.string },
    { kind: 'number', integer: false },
    { kind: 'literal', text: 'true' },
    { kind: 'literal', text: 'false' },
    { kind: 'literal', text: 'null' },
  ];
  if (depth <= 0) node = alt(scalars);
  else {
    const inner = anyValue(depth - 1);
    node = alt([
      { kind: 'object', properties: [], free: freeEntries(inner) },
      { kind: 'array', items: inner, minItems: 0, maxItems: FREE.items },
      ...scalars,
    ]);
  }
  anyCache.set(depth, node);
  return node;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

// ---- Matching -------------------------------------------------------------------------------------------------------

type NumPhase = 'start' | 'minus' | 'zero' | 'int' | 'dot' | 'frac' | 'exp' | 'expSign' | 'expDigits';
type Phase = 'first' | 'after' | 'comma';

/** Where a partial match stands in one value; frames below it on the stack are what follows it. */
type Frame =
  | { f: 'node'; node: JsonNode }
  | { f: 'lit'; text: string; i: number }
  | { f: 'str'; node: Extract<JsonNode, { kind: 'string' }>; len: number; esc: boolean; hex: number }
  | { f: 'num'; integer: boolean; phase: NumPhase; digits: number }
  | { f: 'obj'; node: Extract<JsonNode, { kind: 'object' }>; next: number; count: number; phase: Phase }
  | { f: 'arr'; node: Extract<JsonNode, { kind: 'array' }>; count: number; phase: Phase };

/** An immutable stack of frames; `null` is a complete value with nothing left to match. */
interface Stack {
  top: Frame;
  rest: Stack | null;
}

/** Partial matches alive at once (anyOf branches that agree so far); more are dropped, which only narrows output. */
const MAX_STACKS = 32;

const push = (top: Frame, rest: Stack | null): Stack => ({ top, rest });

/**
 * Where a constrained output stands against its schema: immutable, so a token's characters can be tried on a copy
 * and thrown away. `advance` gives the state after some text, or undefined when the text cannot continue a valid value.
 */
export class JsonMatcher {
  private constructor(private readonly stacks: readonly (Stack | null)[]) {}

  /** The state before any output. */
  static start(root: JsonNode): JsonMatcher {
    return new JsonMatcher([push({ f: 'node', node: root }, null)]);
  }

  /** The state after `text`, or undefined when no valid value starts with the output so far and `text`. */
  advance(text: string): JsonMatcher | undefined {
    let stacks = this.stacks;
    for (const c of text) {
      stacks = stepAll(stacks, c);
      if (stacks.length === 0) return undefined;
    }
    return new JsonMatcher(stacks);
  }

  /** The state after one character (a code point), or undefined. */
  advanceChar(c: string): JsonMatcher | undefined {
    const stacks = stepAll(this.stacks, c);
    return stacks.length === 0 ? undefined : new JsonMatcher(stacks);
  }

  /** The output so far is a complete valid value (it may still go on, as a number may). */
  get canEnd(): boolean {
    return this.stacks.some(canEnd);
  }

  /** The output is a complete value that nothing may follow. */
  get finished(): boolean {
    return this.stacks.every((s) => s === null);
  }
}

function stepAll(stacks: readonly (Stack | null)[], c: string): (Stack | null)[] {
  const out: (Stack | null)[] = [];
  for (const s of stacks) {
    if (s === null) continue;
    for (const n of step(s, c)) {
      out.push(n);
      if (out.length >= MAX_STACKS) return out;
    }
  }
  return out;
}

function canEnd(s: Stack | null): boolean {
  if (s === null) return true;
  const t = s.top;
  return t.f === 'num' && numEndable(t.phase) && canEnd(s.rest);
}

function numEndable(phase: NumPhase): boolean {
  return phase === 'zero' || phase === 'int' || phase === 'frac' || phase === 'expDigits';
}

const isDigit = (c: string) => c >= '0' && c <= '9';
const isHex = (c: string) => isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');

// The stacks after character `c`, from stack `s` (empty: `c` cannot come next).
function step(s: Stack, c: string): (Stack | null)[] {
  const t = s.top;
  switch (t.f) {
    case 'node':
      return enter(t.node, s.rest, c);
    case 'lit':
      if (t.text[t.i] !== c) return [];
      return [t.i + 1 === t.text.length ? s.rest : push({ ...t, i: t.i + 1 }, s.rest)];
    case 'str':
      return stepString(t, s.rest, c);
    case 'num':
      return stepNumber(t, s.rest, c);
    case 'obj':
      return stepObject(t, s.rest, c);
    case 'arr':
      return stepArray(t, s.rest, c);
  }
}

// Starts matching `node` with its first character `c`; `rest` follows it.
function enter(node: JsonNode, rest: Stack | null, c: string): (Stack | null)[] {
  switch (node.kind) {
    case 'literal':
      return step(push({ f: 'lit', text: node.text, i: 0 }, rest), c);
    case 'alt':
      return node.options.flatMap((o) => enter(o, rest, c));
    case 'string':
      return c === '"' ? [push({ f: 'str', node, len: 0, esc: false, hex: 0 }, rest)] : [];
    case 'number':
      return stepNumber({ f: 'num', integer: node.integer, phase: 'start', digits: 0 }, rest, c);
    case 'object':
      return c === '{' ? [push({ f: 'obj', node, next: 0, count: 0, phase: 'first' }, rest)] : [];
    case 'array':
      return c === '[' ? [push({ f: 'arr', node, count: 0, phase: 'first' }, rest)] : [];
  }
}

function stepString(t: Extract<Frame, { f: 'str' }>, rest: Stack | null, c: string): (Stack | null)[] {
  const { minLength, maxLength } = t.node;
  if (t.hex > 0) {
    if (!isHex(c)) return [];
    return [push({ ...t, hex: t.hex - 1, len: t.hex === 1 ? t.len + 1 : t.len }, rest)];
  }
  if (t.esc) {
    if (c === 'u') return [push({ ...t, esc: false, hex: 4 }, rest)];
    if ('"\\/bfnrt'.includes(c)) return [push({ ...t, esc: false, len: t.len + 1 }, rest)];
    return [];
  }
  if (c === '"') return t.len >= minLength ? [rest] : [];
  if (t.len >= maxLength || c < ' ') return [];
  if (c === '\\') return [push({ ...t, esc: true }, rest)];
  return [push({ ...t, len: t.len + 1 }, rest)];
}

function stepNumber(t: Extract<Frame, { f: 'num' }>, rest: Stack | null, c: string): (Stack | null)[] {
  const to = (phase: NumPhase, digits = t.digits) => [push({ ...t, phase, digits }, rest)];
  const fraction = !t.integer;
  switch (t.phase) {
    case 'start':
      if (c === '-') return to('minus');
      if (c === '0') return to('zero', 1);
      if (isDigit(c)) return to('int', 1);
      return [];
    case 'minus':
      if (c === '0') return to('zero', 1);
      if (isDigit(c)) return to('int', 1);
      return [];
    case 'dot':
      return isDigit(c) ? to('frac', 1) : [];
    case 'exp':
      if (c === '+' || c === '-') return to('expSign', 0);
      return isDigit(c) ? to('expDigits', 1) : [];
    case 'expSign':
      return isDigit(c) ? to('expDigits', 1) : [];
    default: {
      // An end-able phase: the number may go on, or end and let `c` continue what follows it.
      if (isDigit(c)) {
        if (t.phase === 'int' && t.digits < CAP.intDigits) return to('int', t.digits + 1);
        if (t.phase === 'frac' && t.digits < CAP.fracDigits) return to('frac', t.digits + 1);
        if (t.phase === 'expDigits' && t.digits < 2) return to('expDigits', t.digits + 1);
      }
      if (fraction && c === '.' && (t.phase === 'zero' || t.phase === 'int')) return to('dot', 0);
      if (fraction && (c === 'e' || c === 'E') && t.phase !== 'expDigits') return to('exp', 0);
      return rest === null ? [] : step(rest, c);
    }
  }
}

// Declared properties may be skipped while optional, never reordered; free entries (no declared properties) are any
// string key with the free value, up to a cap.
function stepObject(t: Extract<Frame, { f: 'obj' }>, rest: Stack | null, c: string): (Stack | null)[] {
  const { properties, free } = t.node;
  const mayClose = properties.slice(t.next).every((p) => !p.required);
  if (t.phase === 'after') {
    if (c === '}') return mayClose ? [rest] : [];
    if (c === ',' && moreEntries(t)) return [push({ ...t, phase: 'comma' }, rest)];
    return [];
  }
  if (c === '}') return t.phase === 'first' && mayClose ? [rest] : [];
  const out: (Stack | null)[] = [];
  if (free) {
    if (t.count < free.max) {
      const after = push({ ...t, count: t.count + 1, phase: 'after' }, rest);
      const value = push({ f: 'node', node: free.value }, after);
      out.push(...enter(free.key, push({ f: 'lit', text: ':', i: 0 }, value), c));
    }
    return out;
  }
  for (let j = t.next; j < properties.length; j++) {
    const p = properties[j]!;
    const after = push({ ...t, next: j + 1, count: t.count + 1, phase: 'after' }, rest);
    out.push(...step(push({ f: 'lit', text: p.key, i: 0 }, push({ f: 'node', node: p.node }, after)), c));
    if (p.required) break;
  }
  return out;
}

function moreEntries(t: Extract<Frame, { f: 'obj' }>): boolean {
  const free = t.node.free;
  return free ? t.count < free.max : t.next < t.node.properties.length;
}

function stepArray(t: Extract<Frame, { f: 'arr' }>, rest: Stack | null, c: string): (Stack | null)[] {
  const { items, minItems, maxItems } = t.node;
  if (t.phase === 'after') {
    if (c === ']') return t.count >= minItems ? [rest] : [];
    if (c === ',' && t.count < maxItems) return [push({ ...t, phase: 'comma' }, rest)];
    return [];
  }
  if (c === ']') return t.phase === 'first' && minItems === 0 ? [rest] : [];
  if (t.count >= maxItems) return [];
  return enter(items, push({ ...t, count: t.count + 1, phase: 'after' }, rest), c);
}
