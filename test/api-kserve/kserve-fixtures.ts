import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
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

/**
 * Keeps `clients` closed-loop clients POSTing `body` to `url` (each must answer 200), waits until
 * every client has had an answer, then polls `/health` `probes` times, 10 ms apart. Returns the
 * /health latency percentiles in ms.
 */
export async function healthUnderLoad(options: {
  base: string;
  url: URL;
  headers: Record<string, string>;
  body: Buffer;
  clients: number;
  probes: number;
  /** Called once the load is running, just before the first probe. */
  onLoaded?: () => void;
}): Promise<{ p50: number; p99: number }> {
  let stop = false;
  let completed = 0;
  const hammer = async (): Promise<void> => {
    while (!stop) {
      const res = await fetch(options.url, { method: 'POST', headers: options.headers, body: options.body });
      const text = await res.text();
      assert.equal(res.status, 200, text);
      completed++;
    }
  };
  const clients = Array.from({ length: options.clients }, () => hammer());
  try {
    const failed = Promise.all(clients).then(
      () => undefined,
      (err: unknown) => err,
    );
    // Let the load build up before measuring (bounded: a failing client ends the wait).
    for (let i = 0; i < 1000 && completed < options.clients; i++) {
      const err = await Promise.race([failed, new Promise((r) => setTimeout(() => r(undefined), 10))]);
      if (err) throw err;
    }
    assert.ok(completed >= options.clients, 'the load never started');
    options.onLoaded?.();
    const latencies: number[] = [];
    for (let i = 0; i < options.probes; i++) {
      const started = performance.now();
      const res = await fetch(new URL('/health', options.base));
      await res.text();
      latencies.push(performance.now() - started);
      assert.equal(res.status, 200);
      await new Promise((r) => setTimeout(r, 10));
    }
    latencies.sort((a, b) => a - b);
    return { p50: latencies[Math.floor(latencies.length * 0.5)]!, p99: latencies[Math.floor(latencies.length * 0.99)]! };
  } finally {
    stop = true;
    await Promise.allSettled(clients);
  }
}
