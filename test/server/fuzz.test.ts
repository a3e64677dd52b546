import { strict as assert } from 'node:assert';
import { NucleusServer } from '@nucleus/core';
import { type FuzzReport, RequestFuzzer } from '../helpers/request-fuzzer.js';

const USER = 'fuzz-user-key-0123456789';
const ADMIN = 'fuzz-admin-key-0123456789';
const SEED = 18;
// A few thousand by default; FUZZ_REQUESTS runs longer.
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 2000);
const MiB = 1024 * 1024;

const gc = () => {
  const collect = (globalThis as { gc?: () => void }).gc;
  assert.ok(collect, 'run with node --expose-gc');
  for (let i = 0; i < 3; i++) collect();
  return process.memoryUsage().heapUsed;
};

function summary(report: FuzzReport): string {
  const failures = report.failures
    .slice(0, 15)
    .map((f) => `  ${f.result} ${f.caller} ${f.method} ${f.path} [${f.mutation}]: ${f.failure}`);
  return `${report.failures.length} of ${report.total} broke the rules:\n${failures.join('\n')}\nstatuses ${JSON.stringify(report.statuses)}`;
}

describe('fuzzing: mutated requests over every route get a JSON 4xx, never a 5xx or a crash', function () {
  this.timeout(300_000);
  let server: NucleusServer;
  before(async () => {
    // Every plugin the project ships, the built-in models, a user key and an admin key: what `nucleus serve` runs.
    server = await NucleusServer.start({
      env: {},
      builtinModels: true,
      cli: {
        'server.host': '127.0.0.1',
        'server.port': 0,
        'plugins.watch': false,
        'logging.level': 'silent',
        'auth.keys': [{ key: USER, role: 'user', name: 'fuzz-user' }],
        'auth.adminKey': ADMIN,
      },
    });
  });
  after(async () => {
    await server?.stop();
  });

  it(`answers ${REQUESTS} fuzzed requests (seed ${SEED}) within the rules, and its heap comes back`, async () => {
    const routes = server.http.routes.describe();
    assert.ok(routes.length > 40, `the route table lists ${routes.length} routes`);
    const models = ['tiny-llama', 'stories260K', 'bert-tiny', 'mlp-classifier'];
    const target = { port: Number(new URL(server.url).port), routes, userKey: USER, adminKey: ADMIN, models };
    const configBefore = server.kernel.config.redacted();
    // A first round opens the models and fills the caches that stay; the heap is measured from after it.
    const warmUp = await new RequestFuzzer(target, SEED + 1).run(300, 6);
    assert.equal(warmUp.failures.length, 0, summary(warmUp));
    const heapBefore = gc();
    const report = await new RequestFuzzer(target, SEED).run(REQUESTS, 6);
    const heapAfter = gc();
    process.stdout.write(`      statuses ${JSON.stringify(report.statuses)}\n`);
    if (process.env.FUZZ_VERBOSE) process.stdout.write(`${JSON.stringify(report.slowest, null, 1)}\n`);
    assert.equal(report.failures.length, 0, summary(report));
    assert.equal(report.total, REQUESTS);
    // A reset that took an early refusal with it while the client was still writing its body: rare, or a fault.
    assert.ok((report.statuses['reset while sending'] ?? 0) < REQUESTS / 100, JSON.stringify(report.statuses));
    // The run exercised the refusals, not only the happy path.
    for (const status of ['400', '401', '403', '404', '413'])
      assert.ok((report.statuses[status] ?? 0) > 0, `no ${status} in ${JSON.stringify(report.statuses)}`);
    // Still serving, with the same config: no fuzzed admin request changed anything.
    const health = await fetch(`${server.url}/ready`);
    assert.equal(health.status, 200, await health.text());
    const infer = await fetch(`${server.url}/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${USER}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } }),
    });
    assert.equal(infer.status, 200, await infer.text());
    assert.deepEqual(server.kernel.config.redacted(), configBefore);
    // Generous: caches (prefix cache, prediction cache, stats windows) may keep some of what they saw.
    const grownMiB = (heapAfter - heapBefore) / MiB;
    assert.ok(grownMiB < 64, `heap grew ${grownMiB.toFixed(1)} MiB over the run`);
  });
});
