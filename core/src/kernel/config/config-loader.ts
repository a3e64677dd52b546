import { readFileSync } from 'node:fs';
import { dirname, extname, isAbsolute, resolve } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { apiKeyChecks } from './api-key-checks.js';
import { securityChecks } from './security-checks.js';
import { ConfigError, describeSource, type ConfigIssue, type ConfigSource } from './config-error.js';
import {
  configKeys,
  configSchemaWithPlugins,
  type ConfigKey,
  type JsonSchema,
  type NucleusConfig,
} from './config-schema.js';
import { childSchema, coercionMessage, ConfigValidator, pluginSchemaIssue } from './config-validator.js';
import { CONFIG_FILE_ENV, coerceString, ENV_PREFIX, envNamesOf, envNameTable } from './env-names.js';

export { ConfigError } from './config-error.js';

/** What {@link loadConfig} reads; every part is optional. */
export interface LoadConfigOptions {
  /** A .yaml/.yml or .json file; when absent, the file named by `NUCLEUS_CONFIG` if set, else none. */
  file?: string;
  /** Environment to read `NUCLEUS_*` from; `process.env` when absent. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Dotted key path → value from the command line; strings are read as the key's type, like env. */
  cli?: Readonly<Record<string, unknown>>;
  /** Each known plugin's config schema, by plugin id. */
  pluginSchemas?: Readonly<Record<string, JsonSchema>>;
  /** Folder that relative paths from env and the command line are resolved against; `process.cwd()` when absent. */
  cwd?: string;
  /**
   * No warnings about sections and env vars of plugins not in `pluginSchemas`: for a first pass made before plugins
   * are discovered.
   */
  ignoreUnknownPluginSections?: boolean;
  /**
   * Return the config as far as it could be built instead of throwing, with its problems in `issues`: for that first
   * pass, so a bad core key does not hide the problems in plugin sections that only the second pass can check.
   */
  keepIssues?: boolean;
  /**
   * Layer the inputs without checking them against the schema (default true: check). Off for a first pass that only
   * reads a key or two before plugins are found: the check compiles the schema, the slow part of a load, and the
   * second pass checks everything again against the schema with the plugins' sections.
   */
  validate?: boolean;
}

/** A parsed config file. */
export interface ConfigFile {
  /** Absolute path. */
  readonly path: string;
  readonly data: Readonly<Record<string, unknown>>;
  /** The 1-based line of the value at a path, where the parser knows it. */
  lineOf(segments: readonly string[]): number | undefined;
}

/** The raw inputs behind a config, kept so a plugin schema that arrives later can be applied to them. */
export interface ConfigLayers {
  readonly file: ConfigFile | undefined;
  /** Only the `NUCLEUS_*` variables. */
  readonly env: Readonly<Record<string, string>>;
  readonly cli: Readonly<Record<string, unknown>>;
  readonly cwd: string;
}

/** A value set after start by a patch, with who set it. */
export interface RuntimeValue {
  readonly value: unknown;
  readonly source: ConfigSource;
}

/** The effective config with where each value came from. */
export interface LoadedConfig {
  readonly config: NucleusConfig;
  /** Dotted key path → source, for every key that has a value. */
  readonly sources: Map<string, ConfigSource>;
  /** Things worth telling the user that do not stop the start, e.g. an unknown `NUCLEUS_*` variable. */
  readonly warnings: string[];
  readonly layers: ConfigLayers;
  readonly pluginSchemas: Readonly<Record<string, JsonSchema>>;
  /** With `keepIssues`: what is wrong (the values in `config` may then break the schema). Otherwise empty. */
  readonly issues: readonly ConfigIssue[];
}

/**
 * Builds the effective config: defaults, then the file, then env, then CLI; throws {@link ConfigError} listing every
 * problem.
 */
export function loadConfig(options: LoadConfigOptions = {}): LoadedConfig {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const fileEnv = env[CONFIG_FILE_ENV];
  const file =
    options.file !== undefined
      ? readConfigFile(resolve(cwd, options.file), undefined)
      : fileEnv !== undefined && fileEnv !== ''
        ? readConfigFile(resolve(cwd, fileEnv), { kind: 'env', name: CONFIG_FILE_ENV })
        : undefined;
  const pluginSchemas = { ...(options.pluginSchemas ?? {}) };
  // Besides NUCLEUS_*, the names keys declare with `x-env` (a plugin's HF_ENDPOINT, HF_TOKEN …).
  const aliases = new Set(configKeys(configSchemaWithPlugins(pluginSchemas)).flatMap((k) => envNamesOf(k).slice(1)));
  const nucleusEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if ((name.startsWith(ENV_PREFIX) || aliases.has(name)) && value !== undefined) nucleusEnv[name] = value;
  }
  const layers: ConfigLayers = { file, env: nucleusEnv, cli: { ...(options.cli ?? {}) }, cwd };
  const built = buildConfig(layers, pluginSchemas, new Map(), {
    ignoreUnknownPluginSections: options.ignoreUnknownPluginSections === true,
    keepIssues: options.keepIssues === true,
    validate: options.validate !== false,
  });
  return {
    config: built.config,
    sources: built.sources,
    warnings: built.warnings,
    layers,
    pluginSchemas,
    issues: built.issues,
  };
}

/** The result of layering inputs over one schema; the store keeps the validator for patches. */
export interface BuiltConfig {
  readonly config: NucleusConfig;
  readonly sources: Map<string, ConfigSource>;
  readonly warnings: string[];
  readonly schema: JsonSchema;
  readonly keys: readonly ConfigKey[];
  readonly validator: ConfigValidator;
  /** Empty unless built with `keepIssues`. */
  readonly issues: readonly ConfigIssue[];
}

/**
 * Layers defaults, file, env, CLI and runtime values over the schema of core plus plugins, and validates the result.
 */
export function buildConfig(
  layers: ConfigLayers,
  pluginSchemas: Readonly<Record<string, JsonSchema>>,
  runtime: ReadonlyMap<string, RuntimeValue>,
  options: { ignoreUnknownPluginSections?: boolean; keepIssues?: boolean; validate?: boolean } = {},
): BuiltConfig {
  const schemaIssues = Object.entries(pluginSchemas).flatMap(([id, schema]) => pluginSchemaIssue(id, schema) ?? []);
  if (schemaIssues.length > 0) throw new ConfigError(schemaIssues);

  const schema = configSchemaWithPlugins(pluginSchemas);
  const keys = configKeys(schema);
  const layering = new Layering(schema, keys, options.ignoreUnknownPluginSections === true);

  for (const key of keys) {
    if (key.schema.default !== undefined)
      layering.setKey(key, structuredClone(key.schema.default), { kind: 'default' }, layers.cwd);
  }
  if (layers.file !== undefined) {
    const fileDir = dirname(layers.file.path);
    for (const [name, value] of Object.entries(layers.file.data)) {
      layering.merge([name], value, (segments) => fileSource(layers.file!, segments), fileDir, 'file');
    }
  }
  layering.applyEnv(layers.env, layers.cwd);
  for (const [path, value] of Object.entries(layers.cli)) {
    layering.merge(path.split('.'), value, () => ({ kind: 'cli' }), layers.cwd, 'cli');
  }
  for (const [path, { value, source }] of runtime) {
    const key = layering.keyByPath.get(path);
    if (key?.runtime === true) layering.setKey(key, structuredClone(value), source, layers.cwd);
  }

  const validator = new ConfigValidator(schema);
  const sourceOf = (segments: readonly string[]) => originOf(layering.sources, layers.file, segments);
  const checked = options.validate !== false;
  const schemaErrors = checked ? validator.validate(layering.config, sourceOf) : [];
  // The checks across keys need values of the right types: after a schema check that found none wrong.
  const typed = checked && schemaErrors.length === 0;
  const keyChecks = typed
    ? apiKeyChecks(layering.config as unknown as NucleusConfig, sourceOf)
    : { issues: [], warnings: [] };
  layering.warnings.push(...keyChecks.warnings);
  const security = typed ? securityChecks(layering.config as unknown as NucleusConfig, sourceOf) : [];
  const issues = [...layering.issues, ...schemaErrors, ...keyChecks.issues, ...security];
  if (issues.length > 0 && options.keepIssues !== true) throw new ConfigError(issues);
  return {
    config: layering.config as unknown as NucleusConfig,
    sources: orderedSources(layering.sources, keys),
    warnings: layering.warnings,
    schema,
    keys,
    validator,
    issues,
  };
}

/**
 * Where the value at a path came from: its own entry or the nearest ancestor's, with the file line of the exact path.
 */
export function originOf(
  sources: ReadonlyMap<string, ConfigSource>,
  file: ConfigFile | undefined,
  segments: readonly string[],
): ConfigSource {
  for (let n = segments.length; n >= 0; n--) {
    const source = sources.get(segments.slice(0, n).join('.'));
    if (source === undefined) continue;
    if (source.kind === 'file' && file !== undefined) return fileSource(file, segments);
    return source;
  }
  // An unknown section (`--set nosuch.key=1`) has no entry of its own, only its keys do.
  const prefix = `${segments.join('.')}.`;
  for (const [path, source] of sources) if (path.startsWith(prefix)) return source;
  return { kind: 'default' };
}

/** Reads and parses a config file; YAML by extension, JSON otherwise. */
export function readConfigFile(path: string, namedBy: ConfigSource | undefined): ConfigFile {
  const via = namedBy === undefined ? '' : ` (named by ${describeSource(namedBy)})`;
  const fail = (message: string, line?: number): never => {
    throw new ConfigError([
      {
        path: '',
        message,
        source: line === undefined ? { kind: 'file', name: path } : { kind: 'file', name: path, line },
      },
    ]);
  };
  let text = '';
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') fail(`config file ${path}${via} not found`);
    if (code === 'EISDIR') fail(`config file ${path}${via} is a folder, not a file`);
    fail(`cannot read config file ${path}${via}: ${(err as Error).message}`);
  }
  const yamlFile = ['.yaml', '.yml'].includes(extname(path).toLowerCase());
  // JSON is YAML too, so the YAML parser also finds line numbers for values in a JSON file.
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: true, uniqueKeys: true });
  let data: unknown;
  if (yamlFile) {
    if (doc.errors.length > 0) {
      throw new ConfigError(
        doc.errors.map((error) => ({
          path: '',
          message: `config file ${path}: ${error.message.trimEnd()}`,
          source: { kind: 'file', name: path, ...(error.linePos === undefined ? {} : { line: error.linePos[0].line }) },
        })),
      );
    }
    data = doc.toJS();
  } else {
    try {
      data = JSON.parse(text);
    } catch (err) {
      const message = (err as Error).message;
      const position = /at position (\d+)/.exec(message);
      if (position === null) fail(`config file ${path} is not valid JSON: ${message}`);
      const { line, col } = lineCounter.linePos(Number(position![1]));
      fail(
        `config file ${path} is not valid JSON at line ${line}, column ${col}: ${message.replace(/ in JSON at position \d+.*$/, '')}`,
        line,
      );
    }
  }
  if (data === null || data === undefined) data = {};
  if (typeof data !== 'object' || Array.isArray(data))
    fail(`config file ${path} must hold a mapping of keys at the top level`);
  const usableDoc = doc.errors.length === 0;
  return {
    path,
    data: data as Record<string, unknown>,
    lineOf(segments) {
      if (!usableDoc) return undefined;
      // The line of the key rather than of its value: for a section, the value starts a line later.
      for (let n = segments.length; n > 0; n--) {
        const parent = n === 1 ? doc.contents : doc.getIn(segments.slice(0, n - 1).map(asIndex), true);
        const segment = segments[n - 1]!;
        let start: number | undefined;
        if (isMap(parent)) {
          const pair = parent.items.find((item) => isScalar(item.key) && String(item.key.value) === segment);
          start = (pair?.key as { range?: [number, number, number] } | undefined)?.range?.[0];
        } else if (isSeq(parent) && /^\d+$/.test(segment)) {
          start = (parent.items[Number(segment)] as { range?: [number, number, number] } | undefined)?.range?.[0];
        }
        if (start !== undefined) return lineCounter.linePos(start).line;
      }
      return undefined;
    },
  };
}

function asIndex(segment: string): string | number {
  return /^\d+$/.test(segment) ? Number(segment) : segment;
}

function fileSource(file: ConfigFile, segments: readonly string[]): ConfigSource {
  const line = file.lineOf(segments);
  return line === undefined ? { kind: 'file', name: file.path } : { kind: 'file', name: file.path, line };
}

/** The config under construction, with the lookups the layers need. */
class Layering {
  readonly config: Record<string, unknown> = {};
  readonly sources = new Map<string, ConfigSource>();
  readonly issues: ConfigIssue[] = [];
  readonly warnings: string[] = [];
  readonly keyByPath: ReadonlyMap<string, ConfigKey>;

  constructor(
    private readonly schema: JsonSchema,
    private readonly keys: readonly ConfigKey[],
    private readonly quietAboutUnknownPlugins: boolean,
  ) {
    this.keyByPath = new Map(keys.map((key) => [key.path, key]));
  }

  setKey(key: ConfigKey, value: unknown, source: ConfigSource, base: string): void {
    if (this.setRaw(key.segments, resolvePaths(value, key.schema, base))) this.sources.set(key.path, source);
  }

  /**
   * Places a value from the file or the command line: a key takes it whole; a folder takes an object key by key;
   * anything else is kept as it is so validation reports it, with its source.
   */
  merge(
    segments: string[],
    value: unknown,
    sourceOf: (segments: readonly string[]) => ConfigSource,
    base: string,
    layer: 'file' | 'cli',
  ): void {
    const path = segments.join('.');
    const key = this.keyByPath.get(path);
    if (key !== undefined) {
      const source = sourceOf(segments);
      if (layer === 'cli' && typeof value === 'string') {
        const coerced = this.coerce(key, value, source);
        if (coerced.ok) this.setKey(key, coerced.value, source, base);
      } else {
        this.setKey(key, structuredClone(value), source, base);
      }
      return;
    }
    const node = this.schemaAt(segments);
    if (node?.properties !== undefined) {
      // An empty section (`plugin:` with everything under it commented out) is YAML null; treat it as absent.
      if (value === null) return;
      if (isPlainObject(value)) {
        for (const [name, child] of Object.entries(value))
          this.merge([...segments, name], child, sourceOf, base, layer);
        return;
      }
    }
    const insideKey = this.keys.find((k) => path.startsWith(`${k.path}.`));
    if (insideKey !== undefined) {
      const source = sourceOf(segments);
      this.issues.push({
        path,
        message: `${path} is inside the key ${insideKey.path}; set ${insideKey.path} as a whole (from ${describeSource(source)})`,
        source,
      });
      return;
    }
    if (
      segments[0] === 'plugin' &&
      segments.length >= 2 &&
      !this.quietAboutUnknownPlugins &&
      !this.knowsPlugin(segments[1]!)
    ) {
      this.warnings.push(
        `${path} is set (${describeSource(sourceOf(segments))}) but no plugin "${segments[1]}" is known; it is checked when that plugin is`,
      );
    }
    if (this.setRaw(segments, structuredClone(value))) this.sources.set(path, sourceOf(segments));
  }

  applyEnv(env: Readonly<Record<string, string>>, cwd: string): void {
    const table = envNameTable(this.keys);
    for (const key of this.keys) {
      const [canonical, ...aliases] = envNamesOf(key);
      const set = [canonical!, ...aliases].filter((name) => env[name] !== undefined && !table.ambiguous.has(name));
      if (set.length === 0) continue;
      const name = set[0]!;
      for (const other of set.slice(1)) {
        if (env[other] !== env[name]) this.warnings.push(`${other} and ${name} both set ${key.path}; ${name} wins`);
      }
      const source: ConfigSource = { kind: 'env', name };
      const coerced = this.coerce(key, env[name]!, source);
      if (coerced.ok) this.setKey(key, coerced.value, source, cwd);
    }
    for (const name of Object.keys(env).sort()) {
      if (name === CONFIG_FILE_ENV || table.byName.has(name)) continue;
      const claimants = table.ambiguous.get(name);
      if (claimants !== undefined) {
        const source: ConfigSource = { kind: 'env', name };
        this.issues.push({
          path: claimants[0]!,
          message: `${name} could mean any of ${claimants.join(', ')}; set them in the config file instead`,
          source,
        });
        continue;
      }
      if (this.quietAboutUnknownPlugins && name.startsWith(`${ENV_PREFIX}PLUGIN_`)) continue;
      this.warnings.push(`${name} is not the env var of any config key (of core or a known plugin); ignored`);
    }
  }

  private coerce(key: ConfigKey, raw: string, source: ConfigSource): { ok: true; value: unknown } | { ok: false } {
    const coerced = coerceString(raw, key.schema);
    if (!coerced.ok) {
      this.issues.push({ path: key.path, message: coercionMessage(key, raw, coerced, source), source });
    }
    return coerced;
  }

  private knowsPlugin(id: string): boolean {
    return this.schema.properties?.plugin?.properties?.[id] !== undefined;
  }

  private schemaAt(segments: readonly string[]): JsonSchema | undefined {
    let node: JsonSchema | undefined = this.schema;
    for (const segment of segments) node = node === undefined ? undefined : childSchema(node, segment);
    return node;
  }

  // Returns false when a value on the way is not an object (e.g. `server: 8080` in the file); that error stays for
  // validation to report.
  private setRaw(segments: readonly string[], value: unknown): boolean {
    let node: Record<string, unknown> = this.config;
    for (const segment of segments.slice(0, -1)) {
      const next = node[segment];
      if (next === undefined) node[segment] = {};
      else if (!isPlainObject(next)) return false;
      node = node[segment] as Record<string, unknown>;
    }
    node[segments[segments.length - 1]!] = value;
    return true;
  }
}

// A relative path in the file means "next to the file", not "wherever the server was started".
function resolvePaths(value: unknown, schema: JsonSchema, base: string): unknown {
  // A URI (`hf://org/repo`, `https://…`) is not a path: a `modelSource` plugin fetches it.
  if (
    schema['x-path'] === true &&
    typeof value === 'string' &&
    value !== '' &&
    !isAbsolute(value) &&
    !/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value)
  )
    return resolve(base, value);
  if (Array.isArray(value) && schema.items !== undefined)
    return value.map((item) => resolvePaths(item, schema.items!, base));
  if (isPlainObject(value) && (schema.properties !== undefined || typeof schema.additionalProperties === 'object')) {
    for (const [name, child] of Object.entries(value)) {
      const childNode = childSchema(schema, name);
      if (childNode !== undefined) value[name] = resolvePaths(child, childNode, base);
    }
  }
  return value;
}

function orderedSources(sources: Map<string, ConfigSource>, keys: readonly ConfigKey[]): Map<string, ConfigSource> {
  const ordered = new Map<string, ConfigSource>();
  for (const key of keys) {
    const source = sources.get(key.path);
    if (source !== undefined) ordered.set(key.path, source);
  }
  for (const [path, source] of sources) if (!ordered.has(path)) ordered.set(path, source);
  return ordered;
}

/** True for `{}`-style objects, false for arrays and null. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
