import { isDeepStrictEqual } from 'node:util';
import { badRequest } from '@nucleus/sdk';
import { apiKeyChecks } from './api-key-checks.js';
import { ConfigError, type ConfigSource } from './config-error.js';
import {
  buildConfig,
  isPlainObject,
  loadConfig,
  originOf,
  type BuiltConfig,
  type ConfigLayers,
  type LoadConfigOptions,
  type LoadedConfig,
  type RuntimeValue,
} from './config-loader.js';
import type { ConfigPath, ConfigValue } from './config-path.js';
import type { ConfigKey, JsonSchema, NucleusConfig } from './config-schema.js';
import { childSchema, pluginSchemaIssue } from './config-validator.js';
import { envName } from './env-names.js';

/** Called once per changed key, after the whole patch has been applied. */
export type ConfigChangeListener = (path: string, value: unknown, previous: unknown) => void;

/** One key a patch changed. */
export interface ConfigChange {
  readonly path: string;
  readonly value: unknown;
  readonly previous: unknown;
}

/** One row of `config print`. */
export interface ConfigEntry {
  readonly path: string;
  /** The env var that sets it; absent for a section of a plugin not yet known. */
  readonly env?: string;
  /** The value, with secrets shown as `***`. */
  readonly value: unknown;
  readonly source: ConfigSource;
  readonly runtime: boolean;
}

/** Options of a {@link ConfigStore}. */
export interface ConfigStoreOptions {
  /**
   * Gets what a change listener throws; by default it becomes a process warning, so one bad listener neither stops the
   * others nor fails the patch.
   */
  onListenerError?: (error: unknown, path: string) => void;
}

const NO_SECTION: Readonly<Record<string, unknown>> = Object.freeze({});

/** The mask secrets are shown as. */
export const REDACTED = '***';

/**
 * Holds the effective config for the life of the server; only runtime-adjustable keys change, and only through
 * {@link ConfigStore.patch}.
 */
export class ConfigStore {
  private readonly layers: ConfigLayers;
  private pluginSchemas: Readonly<Record<string, JsonSchema>>;
  private readonly runtimeValues = new Map<string, RuntimeValue>();
  private readonly listeners = new Set<ConfigChangeListener>();
  private readonly onListenerError: (error: unknown, path: string) => void;
  private built: BuiltConfig;
  private current: Readonly<NucleusConfig>;
  private currentSources: Map<string, ConfigSource>;
  private keyByPath: Map<string, ConfigKey>;
  private currentWarnings: readonly string[];
  // Values by path, read per request on the hot paths; emptied whenever `current` is replaced.
  private readonly memo = new Map<string, unknown>();

  constructor(loaded: LoadedConfig, options: ConfigStoreOptions = {}) {
    this.layers = loaded.layers;
    this.pluginSchemas = loaded.pluginSchemas;
    this.onListenerError =
      options.onListenerError ??
      ((error, path) =>
        process.emitWarning(
          `config change listener for ${path} threw: ${error instanceof Error ? error.message : String(error)}`,
        ));
    // Rebuilt rather than trusted, so the store also holds the validator and key table for later patches.
    this.built = buildConfig(this.layers, this.pluginSchemas, this.runtimeValues);
    this.current = deepFreeze(structuredClone(this.built.config));
    this.currentSources = new Map(this.built.sources);
    this.keyByPath = new Map(this.built.keys.map((key) => [key.path, key]));
    this.currentWarnings = Object.freeze([...this.built.warnings]);
  }

  /** Loads the config and wraps it in a store. */
  static load(options: LoadConfigOptions = {}, storeOptions: ConfigStoreOptions = {}): ConfigStore {
    return new ConfigStore(loadConfig(options), storeOptions);
  }

  /**
   * The value at a dotted path (`queue.highWatermark`, `plugin.backend-cpu`), frozen, typed by the schema: the loader
   * filled every default, so a key with one is never undefined. Under `plugin.<id>` it is `unknown` (undefined when
   * unset), since a plugin's schema arrives with the plugin.
   */
  get<P extends ConfigPath>(path: P): ConfigValue<P> {
    return this.valueAt(path) as ConfigValue<P>;
  }

  /** The schema a plugin set for its section, or undefined. */
  pluginSchema(id: string): JsonSchema | undefined {
    return this.pluginSchemas[id];
  }

  /** A plugin's section, frozen, with the defaults of its schema filled once that is set; `{}` when there is none. */
  pluginSection(id: string): Readonly<Record<string, unknown>> {
    return this.current.plugin[id] ?? NO_SECTION;
  }

  /** The whole effective config, deep-frozen; a later patch replaces it rather than changing it. */
  snapshot(): Readonly<NucleusConfig> {
    return this.current;
  }

  /** Dotted key path → where its current value came from. */
  sources(): ReadonlyMap<string, ConfigSource> {
    return new Map(this.currentSources);
  }

  /** What did not stop the load but deserves a line in the log. */
  warnings(): readonly string[] {
    return this.currentWarnings;
  }

  /** The effective config with every `x-secret` value replaced by `***`; safe to print or serve. */
  redacted(): NucleusConfig {
    return redact(structuredClone(this.current), this.built.schema) as NucleusConfig;
  }

  /** `value` as the key at `path` may be shown: its `x-secret` parts replaced by `***`. */
  redactedValue(path: string, value: unknown): unknown {
    return redact(structuredClone(value), this.keyByPath.get(path)?.schema ?? {});
  }

  /** Every key with a value, in schema order, redacted, with its env var and source: what `config print` shows. */
  entries(): ConfigEntry[] {
    const rows: ConfigEntry[] = [];
    for (const [path, source] of this.currentSources) {
      const key = this.keyByPath.get(path);
      const value = redact(structuredClone(this.valueAt(path)), key?.schema ?? {});
      const row: ConfigEntry =
        key === undefined
          ? { path, value, source, runtime: false }
          : { path, env: envName(path), value, source, runtime: key.runtime };
      rows.push(row);
    }
    return rows;
  }

  /** The dotted paths {@link patch} accepts. */
  runtimeKeys(): string[] {
    return this.built.keys.filter((key) => key.runtime).map((key) => key.path);
  }

  /** The schema in force: core plus every plugin schema set so far. */
  schema(): JsonSchema {
    return this.built.schema;
  }

  /** Subscribes to changes made by {@link patch}; returns the function that unsubscribes. */
  onChange(listener: ConfigChangeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Changes runtime-adjustable keys, all or nothing. `changes` is flat (`{"queue.highWatermark": 2000}`),
   * nested (`{queue: {highWatermark: 2000}}`) or a mix; `source` is who asks (a name means `{kind: 'runtime', name}`). Throws a 400 NucleusError naming every key it refuses.
   */
  patch(
    changes: Readonly<Record<string, unknown>>,
    source: ConfigSource | string = { kind: 'runtime' },
  ): ConfigChange[] {
    const origin: ConfigSource = typeof source === 'string' ? { kind: 'runtime', name: source } : source;
    const { values, unknown } = this.flatten(changes);
    const fixed = [...values.keys()].filter((path) => this.keyByPath.get(path)?.runtime !== true);
    if (unknown.length > 0 || fixed.length > 0) {
      const parts: string[] = [];
      if (unknown.length > 0) parts.push(`not config keys: ${unknown.join(', ')}`);
      if (fixed.length > 0)
        parts.push(`not adjustable at runtime (change them in the config and restart): ${fixed.join(', ')}`);
      const code = unknown.length > 0 ? 'config_unknown_key' : 'config_not_runtime_adjustable';
      throw badRequest(
        code,
        `Config patch refused; ${parts.join('; ')}. Adjustable keys: ${this.runtimeKeys().join(', ')}`,
        unknown[0] ?? fixed[0],
      );
    }
    if (values.size === 0) return [];

    const candidate = structuredClone(this.current) as unknown as Record<string, unknown>;
    const candidateSources = new Map(this.currentSources);
    for (const [path, value] of values) {
      setPath(candidate, path.split('.'), structuredClone(value));
      candidateSources.set(path, origin);
    }
    const issues = this.built.validator.validate(candidate, (segments) =>
      originOf(candidateSources, this.layers.file, segments),
    );
    // One secret under two roles is refused at run time as at start (which role it has would depend on key order).
    if (issues.length === 0 && [...values.keys()].some((path) => path.startsWith('auth.')))
      issues.push(
        ...apiKeyChecks(candidate as unknown as NucleusConfig, (segments) =>
          originOf(candidateSources, this.layers.file, segments),
        ).issues,
      );
    if (issues.length > 0) {
      throw badRequest(
        'config_invalid',
        `Config patch refused: ${issues.map((issue) => issue.message).join('; ')}`,
        issues[0]!.path,
      );
    }

    const changed: ConfigChange[] = [];
    for (const [path, value] of values) {
      const previous = this.valueAt(path);
      if (isDeepStrictEqual(previous, value)) continue;
      changed.push({ path, value: deepFreeze(structuredClone(value)), previous });
      this.runtimeValues.set(path, { value: structuredClone(value), source: origin });
      this.currentSources.set(path, origin);
    }
    if (changed.length === 0) return [];
    this.current = deepFreeze(candidate) as unknown as Readonly<NucleusConfig>;
    this.memo.clear();
    for (const change of changed) this.emit(change);
    return changed;
  }

  /**
   * Adds or replaces a plugin's schema and rebuilds that plugin's section from the file, env and command line.
   * No change events: a plugin reads its section when it activates. Throws {@link ConfigError} and changes nothing when the section is invalid.
   * The schema the store already holds for the plugin changes nothing either, runtime values included.
   */
  setPluginSchema(id: string, schema: JsonSchema): void {
    if (isDeepStrictEqual(this.pluginSchemas[id], schema)) return;
    const issue = pluginSchemaIssue(id, schema);
    if (issue !== undefined) throw new ConfigError([issue]);
    // Runtime values of an earlier version of the plugin may not fit the new schema; the new version starts from the
    // layers.
    const runtime = new Map([...this.runtimeValues].filter(([path]) => !path.startsWith(`plugin.${id}.`)));
    const pluginSchemas = { ...this.pluginSchemas, [id]: schema };
    const built = buildConfig(this.layers, pluginSchemas, runtime);
    this.pluginSchemas = pluginSchemas;
    this.runtimeValues.clear();
    for (const [path, value] of runtime) this.runtimeValues.set(path, value);
    this.built = built;
    this.current = deepFreeze(structuredClone(built.config));
    this.memo.clear();
    this.currentSources = new Map(built.sources);
    this.keyByPath = new Map(built.keys.map((key) => [key.path, key]));
    this.currentWarnings = Object.freeze([...built.warnings]);
  }

  // Untyped, for the key table's paths, which include those of plugin sections.
  private valueAt(path: string): unknown {
    if (this.memo.has(path)) return this.memo.get(path);
    let node: unknown = this.current;
    for (const segment of path.split('.')) {
      if (!isPlainObject(node) && !Array.isArray(node)) return undefined;
      node = (node as Record<string, unknown>)[segment];
    }
    this.memo.set(path, node);
    return node;
  }

  private emit(change: ConfigChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change.path, change.value, change.previous);
      } catch (error) {
        this.onListenerError(error, change.path);
      }
    }
  }

  // Accepts flat, nested and mixed forms by walking the key table: a key takes its value whole, a folder is entered.
  private flatten(changes: Readonly<Record<string, unknown>>): { values: Map<string, unknown>; unknown: string[] } {
    const values = new Map<string, unknown>();
    const unknown: string[] = [];
    const walk = (object: Readonly<Record<string, unknown>>, prefix: string): void => {
      for (const [name, value] of Object.entries(object)) {
        const path = prefix === '' ? name : `${prefix}.${name}`;
        if (this.keyByPath.has(path)) values.set(path, value);
        else if (isPlainObject(value) && this.isFolder(path)) walk(value, path);
        else unknown.push(path);
      }
    };
    walk(changes, '');
    return { values, unknown };
  }

  private isFolder(path: string): boolean {
    return this.built.keys.some((key) => key.path.startsWith(`${path}.`));
  }
}

function setPath(target: Record<string, unknown>, segments: readonly string[], value: unknown): void {
  let node = target;
  for (const segment of segments.slice(0, -1)) {
    if (!isPlainObject(node[segment])) node[segment] = {};
    node = node[segment] as Record<string, unknown>;
  }
  node[segments[segments.length - 1]!] = value;
}

function redact(value: unknown, schema: JsonSchema): unknown {
  if (schema['x-secret'] === true && value !== null && value !== undefined) return REDACTED;
  if (Array.isArray(value))
    return schema.items === undefined ? value : value.map((item) => redact(item, schema.items!));
  if (isPlainObject(value)) {
    for (const [name, child] of Object.entries(value)) {
      const childNode = childSchema(schema, name);
      if (childNode !== undefined) value[name] = redact(child, childNode);
    }
  }
  return value;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
