import type { PluginManifest } from '@nucleus/sdk';
import { ConfigError, type ConfigStore, describeSource } from '../kernel/config/index.js';
import { CPU_BACKEND } from './backend-selector.js';

const PREFIX = 'backend:';

/**
 * The names `backend` may give before any plugin has started: `auto`, those the enabled plugins' manifests declare
 * (`provides: ["backend:<name>"]`) and `cpu`, which is there even without a plugin. Disabled plugins give none.
 */
export function declaredBackends(
  manifests: readonly Pick<PluginManifest, 'id' | 'provides' | 'enabledByDefault'>[],
  disabled: readonly string[],
): string[] {
  const names = manifests
    .filter((m) => !disabled.includes(m.id) && m.enabledByDefault !== false)
    .flatMap((m) => (m.provides ?? []).filter((c) => c.startsWith(PREFIX)).map((c) => c.slice(PREFIX.length)));
  return ['auto', ...new Set(names.filter((name) => name !== CPU_BACKEND)), CPU_BACKEND];
}

/** The config error for a `backend` that is none of `installed`, naming them; undefined when it is one. */
export function unknownBackendError(
  config: Pick<ConfigStore, 'get' | 'sources'>,
  installed: readonly string[],
): ConfigError | undefined {
  const requested = config.get('backend');
  if (installed.includes(requested)) return undefined;
  const source = config.sources().get('backend') ?? { kind: 'default' as const };
  return new ConfigError([
    {
      path: 'backend',
      message: `backend '${requested}' (from ${describeSource(source)}) is not installed; the backends installed are ${installed.join(', ')}`,
      source,
    },
  ]);
}
