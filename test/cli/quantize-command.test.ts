import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { SeededRandom } from '@nucleus/sdk';
import { ensureBuiltinModels } from '@nucleus/plugin-builtin-models';
import { tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/run-cli.js';
import { requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

ort.env.logLevel = 'fatal';

interface Report {
  method: string;
  summary: string;
  sizeBytes: { float: number; quantized: number; ratio: number };
  speedRatio: number;
  accuracy: {
    kind: string;
    samples?: number;
    top1Agreement?: number;
    outputs?: Record<string, { maxAbsDiff: number; meanAbsDiff: number }>;
    perplexity?: { float: number; quantized: number };
    greedyAgreement?: number;
    tokens?: number;
  };
}

describe('nucleus quantize', function () {
  this.timeout(180_000);
  let dir: string;
  let mlp: string;
  before(async () => {
    dir = tempDir('cli-quantize');
    const [m] = await ensureBuiltinModels(join(dir, 'models'), { names: ['mlp-classifier'] });
    mlp = m!.modelPath;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const rows = (seed: number, n: number): string =>
    Array.from({ length: n }, () =>
      JSON.stringify({ input: Array.from(new SeededRandom(seed++).normals(4, 1.5)) }),
    ).join('\n');

  it('static on the MLP: writes model.onnx, model.json and a report whose tolerance the outputs keep on held-out rows', async () => {
    writeFileSync(join(dir, 'calibration.jsonl'), rows(1, 64));
    writeFileSync(join(dir, 'held-out.jsonl'), rows(1000, 200));
    const out = join(dir, 'mlp-static');
    const run = await runCli(
      [
        'quantize',
        mlp,
        '-m',
        'static',
        '--calibration',
        join(dir, 'calibration.jsonl'),
        '--calibrator',
        'entropy',
        '--eval',
        join(dir, 'held-out.jsonl'),
        '-o',
        out,
        '--set',
        `cache.dir=${join(dir, 'cache')}`,
      ],
      {},
      120_000,
    );
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /top-1 agreement \(probabilities\): \d+\.\d+ %/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Report;
    const printed = JSON.parse(
      (
        await runCli([
          'quantize',
          mlp,
          '-m',
          'static',
          '--calibration',
          join(dir, 'calibration.jsonl'),
          '--calibrator',
          'entropy',
          '--eval',
          join(dir, 'held-out.jsonl'),
          '-o',
          `${out}-2`,
          '--json',
        ])
      ).out,
    ) as Report;
    assert.deepEqual(printed.accuracy.outputs, report.accuracy.outputs, 'the same run twice reports the same numbers');
    assert.equal(report.method, 'static');
    assert.equal(report.accuracy.kind, 'tensor');
    assert.equal(report.accuracy.samples, 200);
    assert.ok(report.accuracy.top1Agreement! >= 0.95, `top-1 ${report.accuracy.top1Agreement}`);
    const model = JSON.parse(readFileSync(join(out, 'model.json'), 'utf8')) as {
      quantize: { method: string; calibrator: string };
    };
    assert.equal(model.quantize.method, 'static');
    assert.equal(model.quantize.calibrator, 'entropy');
    // Recomputed here, the written model's outputs stay within the maximum difference the report gives.
    const held = readFileSync(join(dir, 'held-out.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .flatMap((l) => (JSON.parse(l) as { input: number[] }).input);
    const feeds = { input: new ort.Tensor('float32', Float32Array.from(held), [200, 4]) };
    const [f, q] = await Promise.all(
      [mlp, join(out, 'model.onnx')].map(async (p) => {
        const s = await ort.InferenceSession.create(p);
        return (await s.run(feeds)).probabilities!.data as Float32Array;
      }),
    );
    let max = 0;
    for (let i = 0; i < f!.length; i++) max = Math.max(max, Math.abs(f![i]! - q![i]!));
    const reported = report.accuracy.outputs!.probabilities!.maxAbsDiff;
    assert.ok(max > 0 && Math.abs(max - reported) < 1e-6, `recomputed ${max}, reported ${reported}`);
  });

  it('bad usage exits 2 with what to fix: an unknown method, static without calibration', async () => {
    const unknown = await runCli(['quantize', mlp, '-m', 'int3', '-o', join(dir, 'x')]);
    assert.equal(unknown.code, 2);
    assert.match(unknown.err, /asks for quantize "int3".*available: dynamic, fp16, int4, int8, int8-dq, static/);
    const noData = await runCli(['quantize', mlp, '-m', 'static', '-o', join(dir, 'y')]);
    assert.equal(noData.code, 2);
    assert.match(
      noData.err,
      /quantize static \(needs `calibration`\): settings must have required property 'calibration'/,
    );
    assert.ok(!existsSync(join(dir, 'y', 'model.onnx')));
  });

  it('int4 on stories260K.gguf: perplexity and greedy agreement on its reference text, ≥ 4× smaller', async function () {
    requireStories(this);
    const text = readFileSync(join(STORIES_DIR, 'reference-greedy-200.txt'), 'utf8');
    writeFileSync(join(dir, 'story.txt'), text);
    const out = join(dir, 'stories-int4');
    const run = await runCli(
      [
        'quantize',
        join(STORIES_DIR, 'stories260K.gguf'),
        '-m',
        'int4',
        '--text',
        join(dir, 'story.txt'),
        '-o',
        out,
        '--set',
        `cache.dir=${join(dir, 'cache')}`,
      ],
      {},
      120_000,
    );
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /perplexity: \d+\.\d+ float → \d+\.\d+ quantized/);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as Report;
    const a = report.accuracy;
    assert.equal(a.kind, 'llm');
    assert.ok(a.tokens! > 100);
    console.log(
      `      perplexity ${a.perplexity!.float.toFixed(3)} → ${a.perplexity!.quantized.toFixed(3)}, greedy agreement ${(a.greedyAgreement! * 100).toFixed(1)} %, ${report.sizeBytes.ratio.toFixed(2)}× smaller`,
    );
    // The text is the float model's own greedy output: the float model predicts it almost surely.
    assert.ok(a.perplexity!.float < 2 && a.perplexity!.quantized > a.perplexity!.float);
    assert.ok(a.greedyAgreement! > 0.7 && a.greedyAgreement! <= 1);
    assert.ok(report.sizeBytes.ratio > 4, `ratio ${report.sizeBytes.ratio}`);
  });
});
