import type { ConfigKey, JsonSchema, JsonType } from './config-schema.js';

/** Prefix of every env var the config reads. */
export const ENV_PREFIX = 'NUCLEUS_';

/** Env var that names the config file when no file is given explicitly; it is not a config key. */
export const CONFIG_FILE_ENV = 'NUCLEUS_CONFIG';

/** The env var of a dotted key path: `queue.highWatermark` → `NUCLEUS_QUEUE_HIGH_WATERMARK`. */
export function envName(path: string): string {
  const snake = path
    .split('.')
    .map((segment) =>
      segment
        .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
        .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
        .replace(/[^A-Za-z0-9]+/g, '_'),
    )
    .join('_');
  return ENV_PREFIX + snake.toUpperCase();
}

/** Env name → key, built from the schema's keys so the reverse mapping never guesses where the dots were. */
export interface EnvNameTable {
  readonly byName: ReadonlyMap<string, ConfigKey>;
  /** Names two or more keys map to (`plugin.a-b.c` and `plugin.a.b-c`); setting one is an error naming the keys. */
  readonly ambiguous: ReadonlyMap<string, readonly string[]>;
}

/** The env names of a key: the derived one first, then its `x-env` alias if any. */
export function envNamesOf(key: ConfigKey): string[] {
  const alias = key.schema['x-env'];
  return typeof alias === 'string' && alias !== envName(key.path) ? [envName(key.path), alias] : [envName(key.path)];
}

/** Builds the env lookup table for a set of keys. */
export function envNameTable(keys: readonly ConfigKey[]): EnvNameTable {
  const claimants = new Map<string, ConfigKey[]>();
  for (const key of keys) {
    for (const name of envNamesOf(key)) {
      const list = claimants.get(name) ?? [];
      list.push(key);
      claimants.set(name, list);
    }
  }
  const byName = new Map<string, ConfigKey>();
  const ambiguous = new Map<string, string[]>();
  for (const [name, list] of claimants) {
    if (list.length === 1) byName.set(name, list[0]!);
    else
      ambiguous.set(
        name,
        list.map((k) => k.path),
      );
  }
  return { byName, ambiguous };
}

/** The outcome of reading a string as a value of some schema. */
export type Coerced = { ok: true; value: unknown } | { ok: false; reason?: string };

const NUMBER = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Reads a string from env or a `--set` flag as the schema's type: numbers, booleans
 * (`true`/`false`/`1`/`0`), arrays and objects as JSON; a list of strings may also be comma-separated.
 * Failure leaves the reason to the caller, which knows the key and where the string came from.
 */
export function coerceString(raw: string, schema: JsonSchema): Coerced {
  const types = schemaTypes(schema);
  const text = raw.trim();
  if (types.length === 0) {
    if (schema.enum !== undefined) {
      const match = schema.enum.find((member) => String(member) === raw);
      return match === undefined ? { ok: false } : { ok: true, value: match };
    }
    return parseJson(raw) ?? { ok: true, value: raw };
  }
  if (types.includes('boolean') && /^(true|false)$/i.test(text))
    return { ok: true, value: text.toLowerCase() === 'true' };
  if ((types.includes('integer') || types.includes('number')) && NUMBER.test(text)) {
    const value = Number(text);
    if (types.includes('number') || Number.isInteger(value)) return { ok: true, value };
  }
  if (types.includes('boolean') && (text === '1' || text === '0')) return { ok: true, value: text === '1' };
  if (types.includes('null') && !types.includes('string') && text === 'null') return { ok: true, value: null };
  if (types.includes('array') || types.includes('object')) {
    if (text.startsWith('[') || text.startsWith('{')) {
      const parsed = parseJson(text);
      if (parsed !== undefined) return parsed;
      return { ok: false, reason: `is not valid JSON (${jsonErrorMessage(text)})` };
    }
    if (types.includes('array') && schemaTypes(schema.items ?? {}).includes('string') && !types.includes('string')) {
      return { ok: true, value: text === '' ? [] : text.split(',').map((s) => s.trim()) };
    }
  }
  if (types.includes('string')) return { ok: true, value: raw };
  return { ok: false };
}

/** The `type` of a schema as a list; empty when the schema does not say. */
export function schemaTypes(schema: JsonSchema): JsonType[] {
  if (schema.type === undefined) return [];
  return typeof schema.type === 'string' ? [schema.type] : [...schema.type];
}

function parseJson(text: string): Coerced | undefined {
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return undefined;
  }
}

function jsonErrorMessage(text: string): string {
  try {
    JSON.parse(text);
    return '';
  } catch (err) {
    return (err as Error).message;
  }
}
