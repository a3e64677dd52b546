import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { Kernel } from '@nucleus/core';
import { builtinModel, startKernel } from './engine-fixtures.js';

// A task's niceness: field 19 of its /proc stat line (the 17th after the command name).
function nicenessIn(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

// The niceness of every thread of a process.
function threadNiceness(pid: number | 'self'): number[] {
  return readdirSync(`/proc/${pid}/task`).map((tid) => nicenessIn(`/proc/${pid}/task/${tid}/stat`));
}

describe('inference workers run at workers.niceness', function () {
  let kernel: Kernel | undefined;
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
    kernel = await startKernel({ models: [{ name: 'mlp', path: mlp.modelPath }], 'workers.niceness': 7, 'workers.perModel': 2 });
    const niced = threadNiceness('self').filter((n) => n === 7).length - before;
    assert.ok(niced >= 2, `threads at niceness 7: ${niced} more than before (two session threads at least)`);
    assert.equal(nicenessIn('/proc/self/stat'), 0, 'the server thread keeps its priority');
  });

  it('processes: the worker body and its ORT threads are niced, the heartbeat thread is not', async () => {
    const mlp = await builtinModel('mlp-classifier');
    kernel = await startKernel({ models: [{ name: 'mlp', path: mlp.modelPath }], 'workers.niceness': 7, 'workers.isolation': 'process' });
    const pid = kernel.inference.loadedModel('mlp').pool.workers[0]!.pid!;
    const niceness = threadNiceness(pid);
    assert.equal(nicenessIn(`/proc/${pid}/stat`), 7, `the process's main thread (${niceness.join(' ')})`);
    assert.ok(niceness.filter((n) => n === 7).length >= 2, `niced threads: ${niceness.join(' ')}`);
    assert.ok(niceness.includes(0), `the heartbeat thread keeps the server's priority: ${niceness.join(' ')}`);
  });

  it('0 leaves the workers at the server priority', async () => {
    const mlp = await builtinModel('mlp-classifier');
    kernel = await startKernel({ models: [{ name: 'mlp', path: mlp.modelPath }], 'workers.niceness': 0, 'workers.isolation': 'process' });
    const pid = kernel.inference.loadedModel('mlp').pool.workers[0]!.pid!;
    assert.deepEqual([...new Set(threadNiceness(pid))], [0]);
  });
});
