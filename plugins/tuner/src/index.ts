import { definePlugin, ExtensionPoints, optionalService, ServiceRefs, type TunerDecision } from '@nucleus/sdk';
import { type KnobBounds, type KnobChange, TuningController } from './tuning-controller.js';
import { WindowRecorder } from './window-recorder.js';

export {
  type KnobBounds,
  type KnobChange,
  type LlmWindow,
  type TensorWindow,
  TuningController,
  type TunerSettings,
} from './tuning-controller.js';
export { WindowRecorder } from './window-recorder.js';

/**
 * The server config's `tuning` section, as the core config schema defines it (the plugin has no section of its own).
 */
export interface TunerConfig {
  enabled: boolean;
  intervalMs: number;
  targetP99Ms: number;
  targetItlP99Ms: number;
  hysteresis: number;
  patience: number;
  minSamples: number;
  models: string[];
  tuneMaxRunning: boolean;
  bounds: { maxBatchSize: KnobBounds; maxQueueDelayMs: KnobBounds; maxRunning: KnobBounds };
}

/** Decisions kept for `GET /server/tuning`. */
const HISTORY = 100;

/**
 * Tunes each tensor model's batch size and queue delay, and `scheduler.maxRunning` for the LLMs, from measured p99
 * latency and throughput toward a p99 target (see {@link TuningController}); every change is logged, announced as
 * `tuner.decision` (a gauge per knob in the metrics plugin) and listed on `GET /server/tuning`. Off unless
 * `tuning.enabled` is true.
 */
export default definePlugin({
  deps: { inference: optionalService(ServiceRefs.inference), config: ServiceRefs.config },
  activate(ctx, { inference, config: serverConfig }) {
    const config = ctx.configValue('tuning') as TunerConfig;
    const history: Array<TunerDecision & { at: string }> = [];
    const controller = new TuningController({
      targetP99Ms: config.targetP99Ms,
      targetItlP99Ms: config.targetItlP99Ms,
      hysteresis: config.hysteresis,
      patience: config.patience,
      minSamples: config.minSamples,
      ...config.bounds,
    });
    const status = () => ({
      enabled: config.enabled,
      targetP99Ms: config.targetP99Ms,
      targetItlP99Ms: config.targetItlP99Ms,
      bounds: config.bounds,
      decisions: history,
    });
    ctx.contribute(
      ExtensionPoints.routes,
      { method: 'GET', path: '/server/tuning', handler: status },
      { name: 'tuner/GET /server/tuning' },
    );
    if (!config.enabled) {
      ctx.logger.debug('the tuner is off (tuning.enabled)');
      return;
    }
    const recorder = new WindowRecorder();
    const detach = recorder.attach(ctx.events);
    const decided = (model: string, change: KnobChange): void => {
      const decision: TunerDecision = { model, ...change };
      ctx.logger.info(
        { tuner: decision },
        `tuner: ${model} ${change.knob} ${change.previous} → ${change.value}; ${change.reason}`,
      );
      history.push({ ...decision, at: new Date().toISOString() });
      if (history.length > HISTORY) history.shift();
      ctx.events.emit('tuner.decision', decision);
    };
    const evaluate = (): void => {
      const { tensor, llm } = recorder.take();
      for (const [model, window] of tensor) {
        ctx.logger.debug({ model, window }, 'tuner: measured window');
        if (!inference || (config.models.length > 0 && !config.models.includes(model))) continue;
        let batching: { enabled: boolean; maxBatchSize: number; maxQueueDelayMs: number } | undefined;
        try {
          batching = inference.get(model).batching;
        } catch {
          controller.forget(model);
          continue;
        }
        if (!batching?.enabled) continue;
        for (const change of controller.tensor(model, window, batching)) {
          inference.setBatching(model, { [change.knob]: change.value });
          decided(model, change);
        }
      }
      if (config.tuneMaxRunning && llm.samples > 0) {
        const maxRunning = serverConfig.get('scheduler.maxRunning') as number;
        for (const change of controller.llm(llm, maxRunning)) {
          serverConfig.patch({ 'scheduler.maxRunning': change.value }, 'tuner');
          decided('*', change);
        }
      }
    };
    const timer = setInterval(() => {
      try {
        evaluate();
      } catch (err) {
        ctx.logger.warn({ err }, 'the tuner could not apply a decision');
      }
    }, config.intervalMs).unref();
    ctx.onDispose(() => {
      clearInterval(timer);
      detach();
    });
  },
});
