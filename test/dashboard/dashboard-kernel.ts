import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { pluginDir } from '../observability/helpers.js';

/** Who may sign in: the admin key (none: the dashboard is open, read-only) and a user key named `viewer`. */
export interface DashboardKeys {
  admin?: string;
  user?: string;
}

/** A kernel serving only the dashboard and the stats it shows (no models), with `keys` and `config` over that. */
export function startDashboard(keys: DashboardKeys = {}, config: Record<string, unknown> = {}): Promise<TestKernel> {
  return startTestKernel({
    plugins: ['dashboard', 'stats'].map(pluginDir),
    builtinModels: false,
    ...(keys.admin !== undefined && { env: { NUCLEUS_ADMIN_KEY: keys.admin } }),
    config: {
      ...(keys.user !== undefined && { 'auth.keys': [{ key: keys.user, role: 'user', name: 'viewer' }] }),
      ...config,
    },
  });
}
