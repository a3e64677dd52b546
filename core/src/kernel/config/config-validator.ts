import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { describeSource, type ConfigIssue, type ConfigSource } from './config-error.js';
import { configInvariantIssues, containsSecret, type ConfigKey, type JsonSchema } from './config-schema.js';
import { schemaTypes, type Coerced } from './env-names.js';
import { SchemaChecker } from '../schema-checker.js';

/** Finds where the value at a path came from, so a message can say so. */
export type OriginOf = (segments: readonly string[]) => ConfigSource;

const ANNOTATIONS = ['x-runtime', 'x-secret', 'x-env', 'x-path', 'x-plugin'];

function newAjv(): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    useDefaults: true,
    verbose: true,
    allowUnionTypes: true,
    // Unknown keywords in a schema are almost always typos; the softer checks would reject plugin schemas that are
    // fine.
    strictSchema: true,
    strictTypes: false,
    strictTuples: false,
    strictRequired: false,
  });
  ajv.addVocabulary(ANNOTATIONS);
  addFormatsModule.default(ajv);
  return ajv;
}

const pluginSchemas = new SchemaChecker(newAjv);

/** Checks a plugin's own schema before it joins the effective one, so a broken schema is blamed on its plugin. */
export function pluginSchemaIssue(id: string, schema: JsonSchema): ConfigIssue | undefined {
  const error = pluginSchemas.errorOf(schema as object);
  if (error !== undefined) {
    return {
      path: `plugin.${id}`,
      message: `plugin "${id}" declares an invalid config schema: ${error}`,
      source: { kind: 'default' },
    };
  }
  if (schema.type !== undefined && schema.type !== 'object') {
    return {
      path: `plugin.${id}`,
      message: `plugin "${id}" declares a config schema whose type is not "object"`,
      source: { kind: 'default' },
    };
  }
  return undefined;
}

// Compiling is the slow part of a load (tens of ms); the same schema is compiled again by every store rebuild.
const compiled = new Map<string, ValidateFunction>();

function compileCached(schema: JsonSchema): ValidateFunction {
  const text = JSON.stringify(schema);
  let fn = compiled.get(text);
  if (fn === undefined) {
    fn = newAjv().compile(schema as object);
    if (compiled.size >= 16) compiled.delete(compiled.keys().next().value!);
    compiled.set(text, fn);
  }
  return fn;
}

/** Validates a whole config against one compiled schema and turns ajv's errors into sentences naming key and source. */
export class ConfigValidator {
  readonly schema: JsonSchema;
  // Compiled at the first check: a build that layers without checking (a first pass) never pays for it.
  #validateFn: ValidateFunction | undefined;

  constructor(schema: JsonSchema) {
    this.schema = schema;
  }

  private get validateFn(): ValidateFunction {
    this.#validateFn ??= compileCached(this.schema);
    return this.#validateFn;
  }

  /** Validates in place (filling nested defaults) and returns every issue; empty means valid. */
  validate(config: Record<string, unknown>, originOf: OriginOf): ConfigIssue[] {
    // Rules across keys are checked even when single keys are wrong, so one run shows every problem.
    const invariants = (): ConfigIssue[] =>
      configInvariantIssues(config).map(({ path, message, related = [] }) => {
        const source = originOf(path.split('.'));
        const origins =
          related.length === 0
            ? `from ${describeSource(source)}`
            : [path, ...related].map((p) => `${p} from ${describeSource(originOf(p.split('.')))}`).join(', ');
        return { path, message: `${message} (${origins})`, source };
      });
    if (this.validateFn(config)) return invariants();
    const issues: ConfigIssue[] = [];
    const seen = new Set<string>();
    for (const error of this.validateFn.errors ?? []) {
      const issue = this.toIssue(error, originOf);
      if (issue === undefined) continue;
      // One message per value: it already describes every constraint the value broke.
      const key =
        error.keyword === 'additionalProperties' || error.keyword === 'required'
          ? `${error.keyword}:${issue.path}`
          : `value:${issue.path}`;
      if (seen.has(key)) continue;
      seen.add(key);
      issues.push(issue);
    }
    // A rule across keys whose key already has a message of its own would say the same thing twice.
    return [...issues, ...invariants().filter((issue) => !seen.has(`value:${issue.path}`))];
  }

  private toIssue(error: ErrorObject, originOf: OriginOf): ConfigIssue | undefined {
    const segments = pointerSegments(error.instancePath);
    if (error.keyword === 'additionalProperties') {
      const extra = String((error.params as { additionalProperty: string }).additionalProperty);
      const path = [...segments, extra];
      const source = originOf(path);
      const known = Object.keys((error.parentSchema as JsonSchema | undefined)?.properties ?? {});
      const guess = closest(extra, known);
      const hint = guess === undefined ? '' : ` (did you mean "${[...segments, guess].join('.')}"?)`;
      return {
        path: path.join('.'),
        message: `${path.join('.')} is not a config key${hint}; found in ${describeSource(source)}`,
        source,
      };
    }
    if (error.keyword === 'required') {
      const missing = String((error.params as { missingProperty: string }).missingProperty);
      const path = [...segments, missing];
      const source = originOf(segments);
      return {
        path: path.join('.'),
        message: `${path.join('.')} is required; missing in ${describeSource(source)}`,
        source,
      };
    }
    if (['anyOf', 'oneOf', 'if', 'not'].includes(error.keyword) && this.hasOtherErrorsUnder(error)) return undefined;
    const path = segments.join('.');
    const source = originOf(segments);
    const expected = describeExpected((error.parentSchema ?? {}) as JsonSchema) ?? error.message ?? 'valid';
    const must = expected.startsWith('must ') ? expected : `must be ${expected}`;
    const shown = this.isSecret(segments) ? '***' : showValue(error.data);
    return {
      path,
      message: `${path === '' ? 'the config' : path} ${must}; got ${shown} from ${describeSource(source)}`,
      source,
    };
  }

  // ajv reports a failed anyOf as well as each branch's failure; the branches say more.
  private hasOtherErrorsUnder(error: ErrorObject): boolean {
    return (this.validateFn.errors ?? []).some(
      (other) => other !== error && other.instancePath === error.instancePath && other.keyword !== error.keyword,
    );
  }

  private isSecret(segments: readonly string[]): boolean {
    let node: JsonSchema | undefined = this.schema;
    for (const segment of segments) {
      if (node === undefined) return false;
      if (node['x-secret'] === true) return true;
      node = childSchema(node, segment);
    }
    return node !== undefined && containsSecret(node);
  }
}

/** The message for a string from env or the command line that cannot be read as its key's type. */
export function coercionMessage(
  key: ConfigKey,
  raw: string,
  result: Coerced & { ok: false },
  source: ConfigSource,
): string {
  const shown = key.secret ? '***' : showValue(raw);
  const types = schemaTypes(key.schema);
  const structured = types.includes('array') || types.includes('object') ? ' written as JSON' : '';
  const expected = (describeExpected(key.schema) ?? 'valid') + structured;
  // A JSON parser's message quotes the text, which may be a secret.
  const why = result.reason === undefined ? '' : key.secret ? ', which is not valid JSON' : `, which ${result.reason}`;
  return `${key.path} must be ${expected}; got ${shown} from ${describeSource(source)}${why}`;
}

/** The schema of a child value: a property, an array item or an additional property. */
export function childSchema(schema: JsonSchema, segment: string): JsonSchema | undefined {
  const property = schema.properties?.[segment];
  if (property !== undefined) return property;
  if (schema.items !== undefined && /^\d+$/.test(segment)) return schema.items;
  return typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
}

/** What a schema accepts, as a phrase: `an integer from 1 to 65535`, `one of "json", "pretty"`. */
export function describeExpected(schema: JsonSchema): string | undefined {
  if (schema.enum !== undefined) return `one of ${schema.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  const types = schemaTypes(schema);
  if (types.length === 0) return undefined;
  return types.map((type) => describeType(type, schema)).join(' or ');
}

function describeType(type: string, schema: JsonSchema): string {
  switch (type) {
    case 'integer':
    case 'number':
      return (type === 'integer' ? 'an integer' : 'a number') + describeBounds(schema);
    case 'string': {
      let text =
        schema.minLength === 1
          ? 'a non-empty string'
          : schema.minLength !== undefined
            ? `a string of at least ${schema.minLength} characters`
            : 'a string';
      if (schema.pattern !== undefined) text += ` matching /${schema.pattern}/`;
      if (typeof schema.format === 'string') text += ` in ${schema.format} format`;
      return text;
    }
    case 'boolean':
      return 'true or false';
    case 'null':
      return 'null';
    case 'array': {
      const items = schemaTypes(schema.items ?? {});
      return items.length === 1 ? `an array of ${items[0] === 'integer' ? 'integers' : `${items[0]}s`}` : 'an array';
    }
    default:
      return `an ${type}`;
  }
}

function describeBounds(schema: JsonSchema): string {
  const low = schema.minimum ?? schema.exclusiveMinimum;
  const high = schema.maximum ?? schema.exclusiveMaximum;
  if (schema.minimum !== undefined && schema.maximum !== undefined)
    return ` from ${schema.minimum} to ${schema.maximum}`;
  const parts: string[] = [];
  if (low !== undefined) parts.push(schema.minimum !== undefined ? `at least ${low}` : `greater than ${low}`);
  if (high !== undefined) parts.push(schema.maximum !== undefined ? `at most ${high}` : `less than ${high}`);
  return parts.length === 0 ? '' : ` ${parts.join(' and ')}`;
}

function showValue(value: unknown): string {
  const text = value === undefined ? 'nothing' : (JSON.stringify(value) ?? String(value));
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function pointerSegments(pointer: string): string[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

// A typo is usually a letter or two off; further than that, a suggestion is noise.
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    const d = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length]!;
}
