import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TunerDecision } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const PLUGINS = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const plugin = (id: string): string => join(PLUGINS, id);
const MODEL = 'mlp-classifier';
/** Requests sent at once: with the queue delay floored at 10 ms they share batches, which fill the cap of 16. */
const CLIENTS = 16;

/** A kernel with the tuner and the model; `tuning` is the server config's `tuning` section. */
function start(tuning: Record<string, unknown>, env: Record<string, string> = {}): Promise<TestKernel> {
  return startTestKernel({
    plugins: ['api-kserve', 'metrics', 'stats', 'tuner'].map(plugin),
    env,
    config: {
      'batching.maxBatchSize': 16,
      'batching.maxQueueDelayMs': 20,
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

/** Sends `n` requests, `CLIENTS` at a time, and stops early once `done` says so. */
async function load(kit: TestKernel, n: number, done: () => boolean = () => false): Promise<void> {
  for (let sent = 0; sent < n && !done(); sent += CLIENTS) {
    const res = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) =>
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
        bounds: { maxBatchSize: { min: 4, max: 64, step: 4 }, maxQueueDelayMs: { min: 10, max: 20, step: 1 } },
      });
      kit.kernel.events.on('tuner.decision', (d) => decisions.push(d));
    });
    after(() => kit?.stop());

    it('lowers the queue delay and then the batch size down to its bound, and says why', async () => {
      await load(kit, 4000, () => decisions.some((d) => d.knob === 'maxBatchSize' && d.value === 4));
      assert.ok(decisions.length > 0, 'the tuner made decisions under load');
      for (const d of decisions) {
        assert.equal(d.model, MODEL);
        assert.ok(d.value < d.previous, `every move is down: ${JSON.stringify(d)}`);
        assert.match(d.reason, /over the 0\.001 ms target/);
      }
      assert.deepEqual(
        [decisions[0]!.knob, decisions[0]!.previous, decisions[0]!.value],
        ['maxQueueDelayMs', 20, 10],
        'the queue delay goes first, down to its bound',
      );
      const sizes = decisions.filter((d) => d.knob === 'maxBatchSize').map((d) => d.value);
      assert.deepEqual(sizes, [8, 4], 'halved from 16, and never below the bound of 4');
      assert.match(decisions.at(-1)!.reason, /a batch alone takes up to [\d.]+ ms: halving the batch size/);
      // Applied to the running model.
      const now = await batching(kit);
      assert.deepEqual([now.maxBatchSize, now.maxQueueDelayMs], [4, 10]);
      await load(kit, 64);
      assert.equal((await batching(kit)).maxBatchSize, 4, 'at the bound it stays');
    });

    it('lists its decisions on /server/tuning and /server/stats, and a gauge per knob in /metrics', async () => {
      const tuning = (await kit.request('/server/tuning')).body as { enabled: boolean; decisions: TunerDecision[] };
      assert.equal(tuning.enabled, true);
      assert.ok(tuning.decisions.length >= 3);
      const stats = (await kit.request('/server/stats')).body as { tuning?: Array<{ knob: string; value: number }> };
      assert.deepEqual(stats.tuning?.map((t) => [t.knob, t.value]).sort(), [
        ['maxBatchSize', 4],
        ['maxQueueDelayMs', 10],
      ]);
      const metrics = (await kit.request('/metrics')).body as string;
      assert.match(metrics, new RegExp(`nucleus_tuner_knob\\{model_name="${MODEL}",knob="maxBatchSize"\\} 4\\n`));
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
      assert.deepEqual([now.maxBatchSize, now.maxQueueDelayMs], [16, 20]);
      assert.equal(((await kit.request('/server/tuning')).body as { enabled: boolean }).enabled, false);
    });
  });
});
