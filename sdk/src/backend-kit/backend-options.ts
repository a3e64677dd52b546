import { badRequest } from '@nucleus/sdk';

/** How one config key is checked when a model overrides it. */
export type OptionKind =
  | { type: 'integer'; min: number }
  | { type: 'boolean' }
  | { type: 'enum'; values: readonly string[] }
  | { type: 'string' }
  | { type: 'stringMap' }
  | { type: 'object'; fields: Readonly<Record<string, OptionKind>> };

/**
 * The config with a model's own backend options laid over it. Keys this backend does not know are
 * ignored, because a model's options may be written for another backend it falls back from.
 */
export function applyOverrides<C extends object>(
  base: C,
  overrides: Record<string, unknown> | undefined,
  kinds: { readonly [K in keyof C]?: OptionKind },
  backend: string,
): C {
  if (overrides === undefined) return base;
  return merge(base as Record<string, unknown>, overrides, kinds as Record<string, OptionKind>, backend, '') as C;
}

function merge(
  base: Record<string, unknown>,
  overrides: Record<string, unknown>,
  kinds: Readonly<Record<string, OptionKind>>,
  backend: string,
  prefix: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, kind] of Object.entries(kinds)) {
    const value = overrides[key];
    if (value === undefined) continue;
    const path = `${prefix}${key}`;
    const problem = check(value, kind);
    if (problem !== undefined)
      throw badRequest('invalid_backend_option', `${backend} backend option '${path}' ${problem}`, path);
    if (kind.type === 'object')
      out[key] = merge(
        base[key] as Record<string, unknown>,
        value as Record<string, unknown>,
        kind.fields,
        backend,
        `${path}.`,
      );
    else if (kind.type === 'stringMap') out[key] = { ...(base[key] as object), ...(value as object) };
    else out[key] = value;
  }
  return out;
}

function check(value: unknown, kind: OptionKind): string | undefined {
  const got = `got ${JSON.stringify(value)}`;
  switch (kind.type) {
    case 'integer':
      return Number.isInteger(value) && (value as number) >= kind.min
        ? undefined
        : `must be an integer >= ${kind.min}, ${got}`;
    case 'boolean':
      return typeof value === 'boolean' ? undefined : `must be true or false, ${got}`;
    case 'enum':
      return kind.values.includes(value as string) ? undefined : `must be one of ${kind.values.join(', ')}, ${got}`;
    case 'string':
      return typeof value === 'string' ? undefined : `must be a string, ${got}`;
    case 'stringMap':
      return isObject(value) && Object.values(value).every((v) => typeof v === 'string')
        ? undefined
        : 'must be an object of string values';
    case 'object':
      return isObject(value) ? undefined : `must be an object, ${got}`;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
