import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TunerDecision } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const PLUGINS = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const plugin = (id: string): string => join(PLUGINS, id);
const MODEL = 'mlp-classifier';

/** A kernel with the tuner and the model; `tuning` is the server config's `tuning` section. */
function start(tuning: Record<string, unknown>, env: Record<string, string> = {}): Promise<TestKernel> {
  return startTestKernel({
    plugins: ['api-kserve', 'metrics', 'stats', 'tuner'].map(plugin),
    env,
    config: {
      'batching.maxBatchSize': 32,
      'batching.maxQueueDelayMs': 2,
      ...Object.fromEntries(Object.entries(tuning).map(([k, v]) => [`tuning.${k}`, v])),
    },
  });
}

/** The model's batching as `/status` shows it. */
async function batching(kit: TestKernel): Promise<{ maxBatchSize: number; maxQueueDelayMs: number }> {
  const status = (await kit.request('/status')).body as {
    models: Array<{ name: string; versions: Array<{ batching: { maxBatchSize: number; maxQueueDelayMs: number } }> }>;
  };
  return status.models.find((m) => m.name === MODEL)!.versions[0]!.batching;
}

/** Sends `n` requests, 4 at a time, and stops early once `done` says so. */
async function load(kit: TestKernel, n: number, done: () => boolean = () => false): Promise<void> {
  for (let sent = 0; sent < n && !done(); sent += 4) {
    const res = await Promise.all(
      Array.from({ length: 4 }, (_, i) =>
        kit.request(`/v2/models/${MODEL}/infer`, {
          body: { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [i, 0.5, 0.25, sent % 7] }] },
        }),
      ),
    );
    for (const r of res) assert.equal(r.status, 200);
  }
}

describe('tuner plugin: applies decisions to a running model', () => {
  describe('enabled, with a p99 target the model cannot meet', () => {
    let kit: TestKernel;
    const decisions: TunerDecision[] = [];
    before(async () => {
      kit = await start({
        enabled: true,
        intervalMs: 100,
        targetP99Ms: 0.001,
        patience: 1,
        minSamples: 4,
        bounds: { maxBatchSize: { min: 8, max: 64, step: 4 }, maxQueueDelayMs: { min: 0, max: 20, step: 1 } },
      });
      kit.kernel.events.on('tuner.decision', (d) => decisions.push(d));
    });
    after(() => kit?.stop());

    it('lowers the queue delay and then the batch size down to its bound, and says why', async () => {
      await load(kit, 2000, () => decisions.some((d) => d.knob === 'maxBatchSize' && d.value === 8));
      assert.ok(decisions.length > 0, 'the tuner made decisions under load');
      for (const d of decisions) {
        assert.equal(d.model, MODEL);
        assert.ok(d.value < d.previous, `every move is down: ${JSON.stringify(d)}`);
        assert.match(d.reason, /over the 0\.001 ms target/);
      }
      assert.equal(decisions[0]!.knob, 'maxQueueDelayMs', 'the queue delay goes first');
      assert.equal(decisions[0]!.previous, 2);
      const sizes = decisions.filter((d) => d.knob === 'maxBatchSize').map((d) => d.value);
      assert.deepEqual(sizes, [16, 8], 'halved from 32, and never below the bound of 8');
      // Applied to the running model.
      const now = await batching(kit);
      assert.deepEqual([now.maxBatchSize, now.maxQueueDelayMs], [8, 0]);
      await load(kit, 40);
      assert.equal((await batching(kit)).maxBatchSize, 8, 'at the bound it stays');
    });

    it('lists its decisions on /server/tuning and /server/stats, and a gauge per knob in /metrics', async () => {
      const tuning = (await kit.request('/server/tuning')).body as { enabled: boolean; decisions: TunerDecision[] };
      assert.equal(tuning.enabled, true);
      assert.ok(tuning.decisions.length >= 3);
      const stats = (await kit.request('/server/stats')).body as { tuning?: Array<{ knob: string; value: number }> };
      assert.deepEqual(stats.tuning?.map((t) => [t.knob, t.value]).sort(), [
        ['maxBatchSize', 8],
        ['maxQueueDelayMs', 0],
      ]);
      const metrics = (await kit.request('/metrics')).body as string;
      assert.match(metrics, new RegExp(`nucleus_tuner_knob\\{model_name="${MODEL}",knob="maxBatchSize"\\} 8\\n`));
      assert.match(metrics, /nucleus_tuner_decisions_total\{[^}]*knob="maxQueueDelayMs",direction="down"\} [1-9]/);
    });
  });

  describe('switched on by the environment', () => {
    let kit: TestKernel;
    after(() => kit?.stop());

    it('NUCLEUS_TUNING_ENABLED=true turns it on like tuning.enabled', async () => {
      kit = await start(
        { intervalMs: 100, targetP99Ms: 0.001, patience: 1, minSamples: 4 },
        {
          NUCLEUS_TUNING_ENABLED: 'true',
        },
      );
      const decisions: TunerDecision[] = [];
      kit.kernel.events.on('tuner.decision', (d) => decisions.push(d));
      await load(kit, 2000, () => decisions.length > 0);
      assert.equal(decisions[0]?.knob, 'maxQueueDelayMs');
      assert.equal(((await kit.request('/server/tuning')).body as { enabled: boolean }).enabled, true);
    });
  });

  describe('refused settings', () => {
    const refusal = async (config: Record<string, unknown>): Promise<string> => {
      const err = await startTestKernel({ plugins: [plugin('tuner')], builtinModels: false, config }).then(
        async (kit) => {
          await kit.stop();
          assert.fail('the server started');
        },
        (e: unknown) => e as Error,
      );
      return err.message;
    };

    it('a knob whose min is above its max stops the start, naming both keys', async () => {
      assert.match(
        await refusal({ 'tuning.bounds.maxRunning.min': 8, 'tuning.bounds.maxRunning.max': 4 }),
        /tuning\.bounds\.maxRunning\.min \(8\) is above tuning\.bounds\.maxRunning\.max \(4\); swap them/,
      );
    });

    it('the tuner has no plugin section: plugin.tuner.enabled is not a key', async () => {
      assert.match(await refusal({ 'plugin.tuner.enabled': true }), /plugin\.tuner\.enabled is not a config key/);
    });
  });

  describe('off by default', () => {
    let kit: TestKernel;
    after(() => kit?.stop());

    it('changes nothing under the same load', async () => {
      kit = await start({ intervalMs: 100, targetP99Ms: 0.001, patience: 1, minSamples: 4 });
      const decisions: TunerDecision[] = [];
      kit.kernel.events.on('tuner.decision', (d) => decisions.push(d));
      await load(kit, 200);
      await new Promise((r) => setTimeout(r, 250));
      assert.deepEqual(decisions, []);
      const now = await batching(kit);
      assert.deepEqual([now.maxBatchSize, now.maxQueueDelayMs], [32, 2]);
      assert.equal(((await kit.request('/server/tuning')).body as { enabled: boolean }).enabled, false);
    });
  });
});
