import type { ConfigIssue, ConfigSource } from './config-error.js';

/**
 * Keys shorter than this are accepted with a warning: guessable, but short keys are common in local setups and tests.
 */
export const SHORT_KEY_LENGTH = 16;

interface KeyConfig {
  auth?: { keys?: ReadonlyArray<{ key: string; role: string; name?: string }>; adminKey?: string | null };
}

/**
 * What the API keys of a config get wrong beyond their schema: one secret configured twice with different roles is
 * refused (which role it has would depend on the order keys are checked in); a short key, or one secret listed twice
 * with the same role, is a warning.
 */
export function apiKeyChecks(
  config: KeyConfig,
  sourceOf: (segments: readonly string[]) => ConfigSource,
): { issues: ConfigIssue[]; warnings: string[] } {
  const entries = (config.auth?.keys ?? []).map((k, i) => ({ ...k, path: ['auth', 'keys', String(i), 'key'] }));
  const admin = config.auth?.adminKey;
  if (admin) entries.push({ key: admin, role: 'admin', name: 'admin', path: ['auth', 'adminKey'] });
  const issues: ConfigIssue[] = [];
  const warnings: string[] = [];
  const seen = new Map<string, (typeof entries)[number]>();
  for (const entry of entries) {
    const at = entry.path.join('.');
    if (entry.key.length < SHORT_KEY_LENGTH)
      warnings.push(
        `${at} is ${entry.key.length} characters long; use a random key of at least ${SHORT_KEY_LENGTH} (e.g. \`openssl rand -hex 24\`)`,
      );
    const first = seen.get(entry.key);
    if (!first) {
      seen.set(entry.key, entry);
      continue;
    }
    const before = first.path.join('.');
    if (first.role !== entry.role)
      issues.push({
        path: at,
        message: `${at} is the same key as ${before}, with role "${entry.role}" instead of "${first.role}"; give each key one role (remove one, or change the key)`,
        source: sourceOf(entry.path),
      });
    else warnings.push(`${at} is the same key as ${before}; the second entry changes nothing`);
  }
  return { issues, warnings };
}
