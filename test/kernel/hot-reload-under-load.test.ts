import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { NucleusServer } from '@nucleus/core';
import { tempDir } from '../helpers/paths.js';
import { routePlugin, writePlugin } from '../helpers/plugin-fixtures.js';

const RELOADS = 20;
const CLIENTS = 8;

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  collect?.();
  collect?.();
}

function handles(): Record<string, number> {
  const counts: Record<string, number> = {};
  // Immediates are callbacks queued for the next turn of the loop, not resources that can pile up.
  for (const kind of process.getActiveResourcesInfo()) if (kind !== 'Immediate') counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

async function until(pred: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('hot reload under load', function () {
  this.timeout(120_000);

  it(`reloads a plugin ${RELOADS} times from file changes while its route serves traffic: no failed request, flat heap and handles`, async () => {
    const folder = tempDir('reload-load');
    writePlugin(folder, routePlugin('svc', '1.0.0'));
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [folder],
      nodeModules: [],
      // No models: the heap and handle counts measure the plugin host, not model engines warming up.
      builtinModels: false,
      cli: { 'server.port': 0, 'plugins.watch': true, 'logging.level': 'silent' },
    });
    let stop = false;
    let paused = false;
    let inflight = 0;
    const failures: string[] = [];
    const seen = new Set<string>();
    let ok = 0;
    const client = async () => {
      let last = 0;
      while (!stop) {
        if (paused) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        inflight++;
        try {
          const res = await fetch(`${server.url}/svc/version`);
          const body = (await res.json()) as { version?: string; tag?: string };
          if (res.status !== 200 || !body.version) failures.push(`${res.status} ${JSON.stringify(body)}`);
          else {
            ok++;
            seen.add(body.version);
            assert.equal(body.tag, `svc@${body.version}`, 'manifest and files of one version always go together');
            const patch = Number(body.version.split('.')[2]);
            if (patch < last) failures.push(`went back from 1.0.${last} to ${body.version}`);
            last = patch;
          }
        } catch (err) {
          failures.push(String(err));
        } finally {
          inflight--;
        }
      }
    };
    // Both measurements are taken with the clients paused and nothing in flight, so they compare like with like.
    const quietly = async <T>(measure: () => T): Promise<T> => {
      paused = true;
      await until(() => inflight === 0, 10_000, 'requests in flight to finish');
      await new Promise((r) => setTimeout(r, 100));
      gc();
      const result = measure();
      paused = false;
      return result;
    };
    const snapshot = () => ({ heap: process.memoryUsage().heapUsed, handles: handles() });
    const reloadTo = async (n: number) => {
      writePlugin(folder, routePlugin('svc', `1.0.${n}`));
      await until(() => server.kernel.plugins.get('svc').reloads >= n, 10_000, `reload ${n}`);
      const info = server.kernel.plugins.get('svc');
      assert.equal(info.lastReload?.ok, true, info.lastReload?.error);
    };
    try {
      const clients = Array.from({ length: CLIENTS }, client);
      // Warm up: the first reloads load code paths once; measure after them.
      await reloadTo(1);
      await reloadTo(2);
      const before = await quietly(snapshot);
      for (let n = 3; n <= RELOADS; n++) await reloadTo(n);
      await until(() => seen.has(`1.0.${RELOADS}`), 10_000, 'a request served by the last version');
      const after = await quietly(snapshot);
      stop = true;
      await Promise.all(clients);
      const [heapBefore, heapAfter, handlesBefore, handlesAfter] = [
        before.heap,
        after.heap,
        before.handles,
        after.handles,
      ];

      assert.deepEqual(failures, []);
      assert.ok(ok > RELOADS * 10, `only ${ok} requests went through`);
      assert.ok(seen.has('1.0.0') && seen.has(`1.0.${RELOADS}`), `versions seen: ${[...seen].join(', ')}`);
      assert.equal(server.kernel.plugins.get('svc').version, `1.0.${RELOADS}`);
      const growthMb = (heapAfter - heapBefore) / 2 ** 20;
      assert.ok(growthMb < 8, `heap grew ${growthMb.toFixed(1)} MB over ${RELOADS - 2} reloads`);
      for (const kind of new Set([...Object.keys(handlesBefore), ...Object.keys(handlesAfter)])) {
        // Pooled client sockets may close and reopen (both ends count, one pooled connection per client at most);
        // a handle left behind by each reload would add at least RELOADS - 2.
        assert.ok(
          (handlesAfter[kind] ?? 0) <= (handlesBefore[kind] ?? 0) + CLIENTS,
          `${kind}: ${handlesBefore[kind] ?? 0} → ${handlesAfter[kind] ?? 0}`,
        );
      }
      assert.equal(server.kernel.extensions.point('routes').list().length, 1, 'exactly one instance contributes');
    } finally {
      stop = true;
      await server.stop();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
