import { strict as assert } from 'node:assert';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
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
export function call(
  kit: TestKernel,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<TestResponse> {
  return kit.request(path, { ...init, headers: { authorization: `Bearer ${ADMIN_KEY}` } });
}

/** The `error` object of an error response. */
export function errorOf(res: TestResponse): { message: string; type: string; code: string; param?: string } {
  return (res.body as { error: { message: string; type: string; code: string; param?: string } }).error;
}

// The load generator of healthUnderLoad, in a thread of its own so that its work (writing large bodies, reading
// answers) does not hold up the event loop the server and the /health probes share.
const LOAD_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const { url, headers, body, clients } = workerData;
let stop = false;
parentPort.on('message', () => (stop = true));
const hammer = async () => {
  while (!stop) {
    const res = await fetch(url, { method: 'POST', headers, body });
    const text = await res.text();
    if (res.status !== 200) throw new Error('status ' + res.status + ': ' + text);
    parentPort.postMessage({ completed: 1 });
  }
};
Promise.all(Array.from({ length: clients }, hammer)).then(
  () => parentPort.postMessage({ done: true }),
  (err) => parentPort.postMessage({ done: true, error: String(err && err.message || err) }),
);
`;

/**
 * Keeps `clients` closed-loop clients (in a thread of their own) POSTing `body` to `url` (each must answer 200),
 * waits until every client has had an answer, then polls `/health` `probes` times, 10 ms apart. Returns the
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
  let completed = 0;
  let failure: string | undefined;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const load = new Worker(LOAD_THREAD, {
    eval: true,
    workerData: {
      url: options.url.href,
      headers: options.headers,
      body: new Uint8Array(options.body),
      clients: options.clients,
    },
  });
  load.on('message', (m: { completed?: number; done?: boolean; error?: string }) => {
    completed += m.completed ?? 0;
    if (m.error !== undefined) failure = m.error;
    if (m.done) finish();
  });
  load.on('error', (err) => {
    failure = err.message;
    finish();
  });
  try {
    // Let the load build up before measuring (bounded: a failing client ends the wait).
    for (let i = 0; i < 1000 && completed < options.clients && failure === undefined; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.equal(failure, undefined, `a load client failed: ${failure}`);
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
    assert.equal(failure, undefined, `a load client failed: ${failure}`);
    latencies.sort((a, b) => a - b);
    return {
      p50: latencies[Math.floor(latencies.length * 0.5)]!,
      p99: latencies[Math.floor(latencies.length * 0.99)]!,
    };
  } finally {
    load.postMessage('stop');
    await Promise.race([finished, new Promise((r) => setTimeout(r, 30_000))]);
    await load.terminate();
  }
}
