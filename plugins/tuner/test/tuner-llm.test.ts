import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TunerDecision } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';

const PLUGINS = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const plugin = (id: string): string => join(PLUGINS, id);
const MODEL = 'stories260K';
const CLIENTS = 8;

/** `CLIENTS` streamed completions at once, each to its end. */
async function round(kit: TestKernel, n: number): Promise<void> {
  const res = await Promise.all(
    Array.from({ length: CLIENTS }, (_, i) =>
      kit.request('/v1/completions', {
        body: {
          model: MODEL,
          prompt: `Once upon a time ${n} ${i}`,
          max_tokens: 24,
          ignore_eos: true,
          temperature: 0,
          stream: true,
        },
      }),
    ),
  );
  for (const r of res) {
    assert.equal(r.status, 200);
    assert.match(String(r.body), /data: \[DONE\]/);
  }
}

describe('tuner plugin: maxRunning of a real LLM under concurrent streams', () => {
  let kit: TestKernel;
  const decisions: TunerDecision[] = [];
  /** The running sequences the generation loop reported, and whether the tuner had decided anything yet. */
  const running: Array<{ running: number; afterDecision: boolean }> = [];
  const logLines: string[] = [];

  before(async () => {
    kit = await startTestKernel({
      plugins: ['api-openai', 'metrics', 'stats', 'tuner'].map(plugin),
      logDestination: { write: (line) => logLines.push(line) },
      config: {
        'logging.level': 'info',
        'logging.format': 'json',
        'scheduler.maxRunning': CLIENTS,
        'tuning.enabled': true,
        'tuning.intervalMs': 200,
        // No generation meets an inter-token target of a microsecond: every judged window says "over".
        'tuning.targetItlP99Ms': 0.001,
        'tuning.patience': 1,
        'tuning.minSamples': 4,
        'tuning.bounds.maxRunning': { min: 2, max: CLIENTS, step: 2 },
      },
    });
    kit.kernel.events.on('tuner.decision', (d) => decisions.push(d));
    kit.kernel.events.on('engine.stats', (e) => {
      if (e.model === MODEL) running.push({ running: e.running, afterDecision: decisions.length > 0 });
    });
  });
  after(() => kit?.stop());

  it('halves maxRunning down to its bound from the measured inter-token latency, and says why', async () => {
    for (let n = 0; n < 40 && !decisions.some((d) => d.value === 2); n++) await round(kit, n);
    const peakBefore = Math.max(0, ...running.filter((r) => !r.afterDecision).map((r) => r.running));
    assert.ok(peakBefore > 2, `before any decision the loop ran more than 2 at once (peak ${peakBefore})`);
    assert.deepEqual(
      decisions.map((d) => [d.model, d.knob, d.previous, d.value]),
      [
        ['*', 'maxRunning', CLIENTS, CLIENTS / 2],
        ['*', 'maxRunning', CLIENTS / 2, 2],
      ],
      'halved twice, and never below the bound',
    );
    for (const d of decisions) {
      assert.match(d.reason, /inter-token p99 [\d.]+ ms is over the 0\.001 ms target at [\d.]+ tokens\/s/);
      assert.ok(d.p99Ms !== null && d.p99Ms > 0, 'measured, not assumed');
    }
    assert.equal(kit.kernel.config.get('scheduler.maxRunning'), 2, 'applied to the server config');
  });

  it('the generation loop then runs no more than the new limit, with the other streams waiting', async () => {
    const from = running.length;
    await round(kit, 100);
    await round(kit, 101);
    const after = running.slice(from).map((r) => r.running);
    assert.ok(after.length > 0, 'the loop reported while the streams ran');
    assert.equal(Math.max(...after), 2, `at most, and at times exactly, 2 ran at once: ${after.join(' ')}`);
    assert.equal(decisions.length, 2, 'at its bound it stays');
  });

  it('logs each decision with what it measured', () => {
    const logged = logLines
      .map((line) => JSON.parse(line) as { msg: string; tuner?: TunerDecision })
      .filter((l) => l.tuner !== undefined);
    assert.deepEqual(
      logged.map((l) => l.msg.split(';')[0]),
      [`tuner: * maxRunning ${CLIENTS} → ${CLIENTS / 2}`, `tuner: * maxRunning ${CLIENTS / 2} → 2`],
    );
    assert.equal(logged[1]!.tuner!.targetP99Ms, 0.001);
  });

  it('shows the knob on /server/tuning, /server/stats and /metrics', async () => {
    const tuning = (await kit.request('/server/tuning')).body as { decisions: TunerDecision[] };
    assert.deepEqual(
      tuning.decisions.map((d) => [d.knob, d.value]),
      [
        ['maxRunning', CLIENTS / 2],
        ['maxRunning', 2],
      ],
    );
    const stats = (await kit.request('/server/stats')).body as { tuning?: Array<{ model: string; knob: string }> };
    assert.deepEqual(
      stats.tuning?.map((t) => [t.model, t.knob]),
      [['*', 'maxRunning']],
    );
    const metrics = (await kit.request('/metrics')).body as string;
    assert.match(metrics, /nucleus_tuner_knob\{model_name="\*",knob="maxRunning"\} 2\n/);
    assert.match(metrics, /nucleus_tuner_decisions_total\{model_name="\*",knob="maxRunning",direction="down"\} 2\n/);
  });
});
