import { join } from 'node:path';
import { startTestKernel, type TestKernel, type TestResponse } from '@nucleus/sdk/testing';
import { REPO_ROOT } from '../helpers/paths.js';

/** The api-kserve plugin folder. */
export const API_KSERVE = join(REPO_ROOT, 'plugins/api-kserve');

/** The admin key the KServe test servers are started with. */
export const ADMIN_KEY = 'kserve-admin-key-0123456789';

/** A test server with the api-kserve plugin and an admin key; `config` as dotted overrides. */
export function startKServe(config: Record<string, unknown> = {}): Promise<TestKernel> {
  return startTestKernel({ plugins: [API_KSERVE], env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY }, config });
}

/** Sends a request with the admin key (which, once configured, every non-public route needs). */
export function call(kit: TestKernel, path: string, init: { method?: string; body?: unknown } = {}): Promise<TestResponse> {
  return kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
}

/** The `error` object of an error response. */
export function errorOf(res: TestResponse): { message: string; type: string; code: string; param?: string } {
  return (res.body as { error: { message: string; type: string; code: string; param?: string } }).error;
}
