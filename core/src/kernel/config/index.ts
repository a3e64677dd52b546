export {
  ConfigError,
  describeSource,
  type ConfigIssue,
  type ConfigSource,
  type ConfigSourceKind,
} from './config-error.js';
export {
  loadConfig,
  readConfigFile,
  type ConfigFile,
  type ConfigLayers,
  type LoadConfigOptions,
  type LoadedConfig,
  type RuntimeValue,
} from './config-loader.js';
export type { ConfigPath, ConfigReader, ConfigValue, PluginPath } from './config-path.js';
export { renderConfigReference } from './config-reference.js';
export {
  CORE_CONFIG_SCHEMA,
  configKeys,
  configSchemaWithPlugins,
  type ConfigKey,
  type FromSchema,
  type JsonSchema,
  type JsonType,
  type NucleusConfig,
} from './config-schema.js';
export {
  ConfigStore,
  REDACTED,
  type ConfigChange,
  type ConfigChangeListener,
  type ConfigEntry,
  type ConfigStoreOptions,
} from './config-store.js';
export {
  CONFIG_FILE_ENV,
  coerceString,
  ENV_PREFIX,
  envName,
  envNamesOf,
  envNameTable,
  type Coerced,
  type EnvNameTable,
} from './env-names.js';
