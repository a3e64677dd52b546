import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Nucleus } from '@nucleus/core';
import { builtinModel, startKernel } from './engine-fixtures.js';
import { REPO_ROOT } from '../helpers/paths.js';

const RUNTIME_THREADS = pathToFileURL(join(REPO_ROOT, 'core/dist/engine/workers/runtime-threads.js')).href;

// A task's niceness: field 19 of its /proc stat line (the 17th after the command name).
function nicenessIn(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

// The niceness of every thread of a process; a thread that ends between the listing and the read is left out.
function threadNiceness(pid: number | 'self'): number[] {
  return readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      return [nicenessIn(`/proc/${pid}/task/${tid}/stat`)];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH')
        return [];
      throw err;
    }
  });
}

describe('inference workers run at workers.niceness', () => {
  let kernel: Nucleus | undefined;
  before(function () {
    if (!existsSync('/proc/self/task')) this.skip();
  });
  afterEach(async () => {
    await kernel?.stop();
    kernel = undefined;
  });

  it('threads: the session thread and the ORT threads it starts are niced; the server thread is not', async () => {
    const mlp = await builtinModel('mlp-classifier');
    const before = threadNiceness('self').filter((n) => n === 7).length;
    kernel = await startKernel({
      models: [{ name: 'mlp', path: mlp.modelPath }],
      'workers.niceness': 7,
      'workers.perModel': 2,
    });
    const niced = threadNiceness('self').filter((n) => n === 7).length - before;
    assert.ok(niced >= 2, `threads at niceness 7: ${niced} more than before (two session threads at least)`);
    assert.equal(nicenessIn('/proc/self/stat'), 0, 'the server thread keeps its priority');
  });

  it('processes: the worker body and its ORT threads are niced, the heartbeat thread is not', async () => {
    const mlp = await builtinModel('mlp-classifier');
    kernel = await startKernel({
      models: [{ name: 'mlp', path: mlp.modelPath }],
      'workers.niceness': 7,
      'workers.isolation': 'process',
    });
    const pid = kernel.inference.loadedModel('mlp').pool.workers[0]!.pid!;
    const niceness = threadNiceness(pid);
    assert.equal(nicenessIn(`/proc/${pid}/stat`), 7, `the process's main thread (${niceness.join(' ')})`);
    assert.ok(niceness.filter((n) => n === 7).length >= 2, `niced threads: ${niceness.join(' ')}`);
    // The heartbeat thread keeps the server's priority; the runtime's helper threads, which collect this process's
    // garbage, are lowered with the body.
    assert.equal(
      niceness.filter((n) => n === 0).length,
      1,
      `only the heartbeat thread keeps the server's priority: ${niceness.join(' ')}`,
    );
  });

  it("a fresh process's helper threads (V8's garbage collection, libuv's pool) are found and lowered, its main thread is not", () => {
    // A fresh process: before it starts threads of its own, the others are the runtime's.
    const script = `
      import { readdirSync, readFileSync } from 'node:fs';
      import { lowerThreads, runtimeHelperThreads } from ${JSON.stringify(RUNTIME_THREADS)};
      const nice = (tid) => { const s = readFileSync('/proc/self/task/' + tid + '/stat', 'utf8'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[16]); };
      const helpers = runtimeHelperThreads();
      const lowered = lowerThreads(helpers, 6);
      const again = lowerThreads(helpers, 6);
      console.log(JSON.stringify({ helpers: helpers.map(nice), main: nice(process.pid), lowered, again, listedMain: helpers.includes(process.pid) }));`;
    const out = JSON.parse(
      execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }),
    ) as { helpers: number[]; main: number; lowered: number; again: number; listedMain: boolean };
    assert.ok(out.helpers.length >= 1, 'V8 starts helper threads with every process');
    assert.deepEqual([...new Set(out.helpers)], [6], `helper threads: ${out.helpers.join(' ')}`);
    assert.equal(out.lowered, out.helpers.length);
    assert.equal(out.again, 0, 'threads already that low are left alone');
    assert.equal(out.main, 0);
    assert.equal(out.listedMain, false);
  });

  it('0 leaves the workers at the server priority', async () => {
    const mlp = await builtinModel('mlp-classifier');
    kernel = await startKernel({
      models: [{ name: 'mlp', path: mlp.modelPath }],
      'workers.niceness': 0,
      'workers.isolation': 'process',
    });
    const pid = kernel.inference.loadedModel('mlp').pool.workers[0]!.pid!;
    assert.deepEqual([...new Set(threadNiceness(pid))], [0]);
  });
});
