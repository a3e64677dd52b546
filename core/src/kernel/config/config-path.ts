import type { NucleusConfig } from './config-schema.js';

// Walks the schema-derived config type; arrays (`models`, `auth.keys`) are read whole, and `plugin` is left to
// `PluginPath`, since its sections are known only when their plugins are.
type PathsOf<T> = T extends readonly unknown[]
  ? never
  : T extends object
    ? { [K in Exclude<keyof T, 'plugin'> & string]: K | `${K}.${PathsOf<T[K]>}` }[Exclude<keyof T, 'plugin'> & string]
    : never;

/** A plugin's section or a key in it: `plugin.backend-cpu`, `plugin.backend-cpu.intraOpNumThreads`. */
export type PluginPath = `plugin.${string}`;

/**
 * A dotted path `ConfigStore.get` reads, derived from the schema: every folder and key of the core config
 * (`server`, `server.port`, `cache.prefix.maxBytes`), `plugin`, and any path under a plugin's section.
 */
export type ConfigPath = PathsOf<NucleusConfig> | 'plugin' | PluginPath;

type ValueAt<T, P extends string> = P extends `${infer Head}.${infer Rest}`
  ? Head extends keyof T
    ? ValueAt<T[Head], Rest>
    : never
  : P extends keyof T
    ? T[P]
    : never;

/**
 * What `ConfigStore.get(path)` returns for a path of the core config, as the schema says once defaults are filled:
 * `ConfigValue<'server.port'>` is `number`, `ConfigValue<'cache.dir'>` is `string | null`. Under `plugin.<id>` it is
 * `unknown`: a plugin's schema arrives with the plugin, so only the plugin knows the shape of its section.
 */
export type ConfigValue<P extends ConfigPath> = P extends PluginPath ? unknown : ValueAt<NucleusConfig, P>;

/**
 * What an engine part reads the config through: `get` typed by path (defaults filled), and `onChange` for the
 * runtime-adjustable keys. A `ConfigStore` is one.
 */
export interface ConfigReader {
  get<P extends ConfigPath>(path: P): ConfigValue<P>;
  onChange?(listener: (path: string, value: unknown, previous: unknown) => void): () => void;
}
