import { strict as assert } from 'node:assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SessionWorkerClient } from '@nucleus/core/internal/engine/index';
import type { SessionWorkerSpec } from '@nucleus/core/internal/engine/index';
import { NucleusError } from '@nucleus/sdk';
import { tempDir } from '../helpers/paths.js';
import { builtinModel, f32, floats, runDirect, within } from './engine-fixtures.js';

const IMAGE = 3 * 224 * 224;

function spec(modelPath: string): SessionWorkerSpec {
  return {
    label: 'test@1',
    modelPath,
    backend: { name: 'cpu', requested: 'cpu', options: { executionProviders: ['cpu'] } },
  };
}

describe('session worker', () => {
  let resnet: string;
  before(async () => {
    resnet = (await builtinModel('resnet-tiny')).modelPath;
  });

  it('runs the session in a worker thread, same numbers as a direct run, while the event loop keeps ticking', async () => {
    const worker = new SessionWorkerClient(spec(resnet));
    try {
      const ready = await worker.start();
      assert.equal(ready.backend, 'cpu');
      assert.deepEqual(ready.inputs, [
        { name: 'input', isTensor: true, type: 'float32', shape: ['batch', 3, 224, 224] },
      ]);
      // A batch long enough (hundreds of ms) that a run blocking this thread would show as one long gap.
      const images = f32(floats(192 * IMAGE, 3), [192, 3, 224, 224]);
      const expected = await runDirect(resnet, { input: images });

      // Copied before the clock starts: copying 115 MB is this thread's own work, not the run's.
      const sent = { input: { ...images, data: images.data.slice() } };
      let ticks = 0;
      let longestGap = 0;
      let last = performance.now();
      const timer = setInterval(() => {
        const now = performance.now();
        longestGap = Math.max(longestGap, now - last);
        last = now;
        ticks++;
      }, 5);
      const started = performance.now();
      let result: Awaited<ReturnType<typeof worker.run>>;
      try {
        result = await worker.run(sent);
      } finally {
        clearInterval(timer);
      }
      const elapsed = performance.now() - started;
      assert.deepEqual(result.outputs.logits!.shape, [192, 10]);
      assert.deepEqual(
        Array.from(result.outputs.logits!.data as Float32Array),
        Array.from(expected.logits!.data as Float32Array),
      );
      // A run on the main thread would have starved the timer for the whole run: no tick, one gap as long as the run.
      // The bounds leave room for a busy machine taking the CPU away from this thread now and then.
      assert.ok(ticks >= 5, `only ${ticks} ticks in ${elapsed.toFixed(0)} ms`);
      assert.ok(
        longestGap < elapsed / 2,
        `the event loop stalled for ${longestGap.toFixed(0)} of the run's ${elapsed.toFixed(0)} ms`,
      );
    } finally {
      await worker.close(0);
    }
  });

  it('rejects the pending runs of a killed worker at once, restarts it, and the next run succeeds', async () => {
    const worker = new SessionWorkerClient(spec(resnet));
    try {
      await worker.start();
      const image = f32(floats(16 * IMAGE, 5), [16, 3, 224, 224]);
      const runs = Array.from({ length: 4 }, () => worker.run({ input: { ...image, data: image.data.slice() } }));
      await new Promise((r) => setTimeout(r, 20));
      assert.ok(worker.pending > 0);
      await worker.kill();
      const settled = await within(Promise.allSettled(runs), 10_000, 'the runs of the killed worker');
      const rejected = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      assert.ok(rejected.length >= 1, 'at least the queued runs are rejected');
      for (const r of rejected) {
        assert.ok(r.reason instanceof NucleusError);
        assert.equal(r.reason.code, 'worker_exited');
        assert.equal(r.reason.status, 503);
        assert.match(r.reason.message, /test@1 stopped .* retry/);
      }
      assert.equal(worker.pending, 0);
      const next = await within(
        worker.run({ input: f32(floats(IMAGE, 6), [1, 3, 224, 224]) }),
        10_000,
        'the run after the restart',
      );
      assert.deepEqual(next.outputs.logits!.shape, [1, 10]);
      assert.equal(worker.restarts, 1);
    } finally {
      await worker.close(0);
    }
  });

  it('refuses to start on a file ORT cannot load, saying which model', async () => {
    const dir = tempDir('bad-model');
    const path = join(dir, 'model.onnx');
    writeFileSync(path, 'not an onnx model');
    const worker = new SessionWorkerClient(spec(path));
    await assert.rejects(worker.start(), (err: NucleusError) => {
      assert.match(err.message, /could not open test@1/);
      return true;
    });
    await worker.close(0);
  });
});
