import { strict as assert } from 'node:assert';
import { rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { ProgressReporter } from '@nucleus/core/internal/kernel/progress-reporter';
import { verifyChecksums } from '@nucleus/core/internal/engine/model-manifest';
import { sha256File } from '@nucleus/sdk';
import type { Progress } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import { Int8WeightTransform } from '@nucleus/plugin-quant-int8';
import { tempDir } from '../helpers/paths.js';

/** A logger whose JSON lines land in an array. */
function recordingLogger() {
  const lines: Array<Record<string, unknown> & { msg: string }> = [];
  const logger = createLogger({ destination: { write: (s: string) => void lines.push(JSON.parse(s)) } });
  return { logger, lines };
}

/** A clock the test moves by hand. */
function fakeClock() {
  let t = 1000;
  return { now: () => t, at: (ms: number) => void (t = 1000 + ms) };
}

/** Records what a producer tells its Progress. */
class RecordingProgress implements Progress {
  calls: string[] = [];
  advanced = 0;
  start(total: number, label: string, unit?: string) {
    this.calls.push(`start ${total} ${label} ${unit ?? 'items'}`);
  }
  advance(units: number) {
    this.advanced += units;
  }
  done() {
    this.calls.push('done');
  }
}

const GiB = 1024 ** 3;

describe('progress', () => {
  describe('not on a terminal', () => {
    it('logs nothing for the first two seconds, then a line at most every two seconds, and one when done', () => {
      const { logger, lines } = recordingLogger();
      const clock = fakeClock();
      const stream = { isTTY: false, write: () => assert.fail('nothing is drawn when stderr is not a terminal') };
      const progress = new ProgressReporter({ logger, now: clock.now, stream }).create();
      progress.start(4 * GiB, 'hashing big.gguf', 'bytes');
      for (const [ms, gib] of [
        [500, 0.5],
        [1900, 0.5],
        [2000, 0.5],
        [3000, 0.5],
        [4100, 1],
        [5000, 0.5],
      ] as const) {
        clock.at(ms);
        progress.advance(gib * GiB);
      }
      clock.at(5500);
      progress.done();
      progress.advance(GiB);
      assert.deepEqual(
        lines.map((l) => l.msg),
        [
          'hashing big.gguf: 37% (1.50 GiB / 4.00 GiB, 805 MB/s)',
          'hashing big.gguf: 75% (3.00 GiB / 4.00 GiB, 786 MB/s)',
          'hashing big.gguf: done in 5.5 s',
        ],
      );
      assert.deepEqual(
        {
          operation: lines[1]!.operation,
          completed: lines[1]!.completed,
          total: lines[1]!.total,
          unit: lines[1]!.unit,
          percent: lines[1]!.percent,
          elapsedMs: lines[1]!.elapsedMs,
        },
        {
          operation: 'hashing big.gguf',
          completed: 3 * GiB,
          total: 4 * GiB,
          unit: 'bytes',
          percent: 75,
          elapsedMs: 4100,
        },
      );
    });

    it('says nothing at all about an operation that ends within two seconds', () => {
      const { logger, lines } = recordingLogger();
      const clock = fakeClock();
      const progress = new ProgressReporter({
        logger,
        now: clock.now,
        stream: { write: () => assert.fail('not a terminal') },
      }).create();
      progress.start(10, 'quantizing mlp to int8');
      for (let i = 1; i <= 10; i++) {
        clock.at(i * 150);
        progress.advance(1);
      }
      progress.done();
      assert.deepEqual(lines, []);
    });
  });

  describe('on a terminal', () => {
    function terminal(columns = 100) {
      const writes: string[] = [];
      return { writes, stream: { isTTY: true, columns, write: (s: string) => void writes.push(s) } };
    }

    it('redraws one line in place, at most every 100 ms, and clears it when done', () => {
      const { logger, lines } = recordingLogger();
      const clock = fakeClock();
      const { writes, stream } = terminal();
      const progress = new ProgressReporter({ logger, now: clock.now, stream }).create();
      progress.start(40, 'quantizing stories to int8');
      clock.at(1000);
      progress.advance(10);
      assert.deepEqual(writes, [], 'quiet for the first two seconds');
      clock.at(2000);
      progress.advance(10);
      clock.at(2050);
      progress.advance(5);
      clock.at(2150);
      progress.advance(5);
      clock.at(3000);
      progress.done();
      assert.deepEqual(writes, [
        '\r\x1b[Kquantizing stories to int8 [##########----------] 50% (20 / 40) 2 s',
        '\r\x1b[Kquantizing stories to int8 [###############-----] 75% (30 / 40) 2 s',
        '\r\x1b[K',
      ]);
      assert.deepEqual(
        lines.map((l) => l.msg),
        ['quantizing stories to int8: done in 3.0 s'],
      );
    });

    it('shows operations running at once side by side on the one line, cut to the terminal width', () => {
      const { logger } = recordingLogger();
      const clock = fakeClock();
      const { writes, stream } = terminal(80);
      const reporter = new ProgressReporter({ logger, now: clock.now, stream, quietMs: 0, redrawMs: 0 });
      const a = reporter.create();
      const b = new ProgressReporter({ logger, now: clock.now, stream, quietMs: 0, redrawMs: 0 }).create();
      a.start(2 * 1024 * 1024, 'hashing a.onnx', 'bytes');
      b.start(0, 'building graph');
      a.advance(1024 * 1024);
      b.advance(3);
      const full = 'hashing a.onnx [##########----------] 50% (1.0 MiB / 2.0 MiB) 0 s · building graph 3 0 s';
      assert.equal(writes.at(-1), `\r\x1b[K${full.slice(0, 78)}…`);
      a.done();
      b.advance(1);
      assert.equal(writes.at(-1), '\r\x1b[Kbuilding graph 4 0 s');
    });
  });

  describe('where the server reports it', () => {
    let dir: string;
    before(() => {
      dir = tempDir('progress');
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('model hashing counts every byte of the file', async () => {
      const file = join(dir, 'model.onnx');
      writeFileSync(file, new Uint8Array(9 * 1024 * 1024).fill(7));
      const progress = new RecordingProgress();
      const sum = await sha256File(file, progress);
      assert.match(sum, /^[0-9a-f]{64}$/);
      assert.deepEqual(progress.calls, [`start ${statSync(file).size} hashing model.onnx bytes`, 'done']);
      assert.equal(progress.advanced, statSync(file).size);
      // verifyChecksums, as the engine calls it, asks for one Progress per file it hashes.
      const perFile: RecordingProgress[] = [];
      await verifyChecksums(
        file,
        { sha256: sum },
        join(dir, 'model.json'),
        () => (perFile.push(new RecordingProgress()), perFile.at(-1)!),
      );
      assert.equal(perFile.length, 1);
      assert.equal(perFile[0]!.advanced, statSync(file).size);
    });

    it('the int8 transform reports each node of the graph it rewrites, and ends even when it fails', () => {
      const g = new GraphBuilder('mm');
      const x = g.input('x', 'float32', [1, 32]);
      const w = g.initializer('w', new Float32Array(32 * 8).fill(0.5), [32, 8]);
      g.output(g.ops.relu(g.ops.matMul(x, w)), 'float32', [1, 8], { name: 'y' });
      const model = g.toModel();
      const progress = new RecordingProgress();
      const result = new Int8WeightTransform().transform(model, {
        model: 'mm',
        kind: 'tensor',
        path: '/m.onnx',
        progress,
      });
      assert.match(result.summary, /^1 MatMul\/Gemm nodes → MatMulNBits/);
      assert.deepEqual(progress.calls, ['start 2 quantizing mm to int8 items', 'done']);
      assert.equal(progress.advanced, 2);
      const broken = new RecordingProgress();
      const bad = {
        graph: {
          nodes: [{ opType: 'MatMul', domain: '', inputs: ['x', 'w'], outputs: ['y'], name: 'n', attributes: {} }],
          initializers: null,
          inputs: [],
          outputs: [],
        },
      };
      assert.throws(() =>
        new Int8WeightTransform().transform(bad as never, {
          model: 'bad',
          kind: 'tensor',
          path: '/b.onnx',
          progress: broken,
        }),
      );
      assert.deepEqual(broken.calls, ['start 1 quantizing bad to int8 items', 'done']);
    });
  });
});
