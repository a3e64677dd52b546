/** Where a config value came from; later kinds in this list win over earlier ones at load. */
export type ConfigSourceKind = 'default' | 'file' | 'env' | 'cli' | 'runtime';

/** Where one value came from: the file's path, the env var, the patch's author. */
export interface ConfigSource {
  readonly kind: ConfigSourceKind;
  /** File path, env var name, CLI key or the name a runtime patch was made under. */
  readonly name?: string;
  /** For a file: the 1-based line the value is on, where the parser knows it. */
  readonly line?: number;
}

/** One thing wrong with the config. */
export interface ConfigIssue {
  /** Dotted path of the key, or '' for the file as a whole. */
  readonly path: string;
  /** A sentence a user can act on, naming the key and the source. */
  readonly message: string;
  readonly source: ConfigSource;
}

/** The config cannot be used; `issues` lists every problem found, not just the first. */
export class ConfigError extends Error {
  readonly issues: readonly ConfigIssue[];

  constructor(issues: readonly ConfigIssue[]) {
    super(formatIssues(issues));
    this.name = 'ConfigError';
    this.issues = issues;
  }
}

/** A source as a phrase for messages and `config print`: `env NUCLEUS_SERVER_PORT`, `file nucleus.yaml:3`. */
export function describeSource(source: ConfigSource): string {
  switch (source.kind) {
    case 'default':
      return 'default';
    case 'file':
      return source.name === undefined
        ? 'file'
        : `file ${source.name}${source.line === undefined ? '' : `:${source.line}`}`;
    case 'env':
      return `env ${source.name ?? ''}`.trim();
    case 'cli':
      return source.name === undefined ? 'command line' : `command line (${source.name})`;
    case 'runtime':
      return source.name === undefined ? 'runtime patch' : `runtime patch by ${source.name}`;
  }
}

function formatIssues(issues: readonly ConfigIssue[]): string {
  if (issues.length === 1) return `Invalid configuration: ${issues[0]!.message}`;
  return [`Invalid configuration (${issues.length} problems):`, ...issues.map((issue) => `  - ${issue.message}`)].join(
    '\n',
  );
}
