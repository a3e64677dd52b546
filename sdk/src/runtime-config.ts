/**
 * The server's config as plugins may change it while serving (registered under `Services.config`): the same
 * runtime-adjustable keys `PATCH /admin/config` changes, validated the same way, each change announced as
 * `config.changed`.
 */
export interface RuntimeConfig {
  /** The effective value at a dotted path (`scheduler.maxRunning`); undefined where the config has none. */
  get(path: string): unknown;
  /**
   * Changes runtime-adjustable keys, all or nothing (`{"scheduler.maxRunning": 16}`); `source` names who changes them
   * (shown where the config says where a value came from). Throws a 400 NucleusError naming every key it refuses.
   */
  patch(changes: Readonly<Record<string, unknown>>, source: string): void;
}
