import {
  definePlugin,
  ExtensionPoints,
  NucleusError,
  optionalService,
  ServiceRefs,
  type GenerationService,
  type InferenceAnswer,
  type InferenceCall,
  type InferenceService,
  type PluginContext,
} from '@nucleus/sdk';
import { DriftMonitor } from './drift-monitor.js';
import { insightRoutes } from './insight-routes.js';
import { ModelExplainer } from './model-explainer.js';
import { ProfileStore } from './profile-store.js';

export { binShares, ksOneSample, ksTwoSample, normalCdf, psi, quantileEdges } from './drift-statistics.js';
export { DriftMonitor, type DriftOptions, type QualityTotals } from './drift-monitor.js';
export { coalitions, kernelShap, shapleyKernelWeight, type Evaluate, type ShapValues } from './kernel-shap.js';
export { ModelExplainer, type ExplainerOptions } from './model-explainer.js';
export { permutationImportance } from './permutation-importance.js';
export { ProfileStore } from './profile-store.js';
export { ReferenceProfile, type ReferenceDocument, type ReferenceSource } from './reference-profile.js';

/** The model-insight plugin's config section (`plugin.model-insight`), as its schema in package.json defines it. */
export interface ModelInsightConfig {
  maxFeatures: number;
  backgroundSize: number;
  maxCoalitions: number;
  maxRowsPerRun: number;
  permutationRepeats: number;
  maxExplainedRows: number;
  seed: number;
  referenceSize: number;
  drift: { enabled: boolean; windowSize: number; minSamples: number; evaluateIntervalMs: number };
}

/**
 * Explanations and drift for tensor models, one plugin because both rest on the same reference profile per model
 * (model.json training statistics, an upload, or the first requests): the explainer (Kernel SHAP, permutation
 * importance) behind `POST /v2/models/:name/explain` and `explain: true`, and a drift monitor fed by an
 * `aroundInference` hook that emits `drift.report` events for metrics, stats and alerts.
 */
export default definePlugin({
  deps: { inference: optionalService(ServiceRefs.inference), generation: optionalService(ServiceRefs.generation) },
  activate(ctx: PluginContext<ModelInsightConfig>, { inference, generation }) {
    const config = ctx.config;
    const service = (): InferenceService => {
      if (!inference)
        throw new NucleusError(503, 'engine_unavailable', 'the inference engine is not running in this server');
      return inference;
    };
    const llms = (): GenerationService | undefined => generation;
    const profiles = new ProfileStore(config.referenceSize);
    const explainer = new ModelExplainer(service, profiles, config);
    const monitor = new DriftMonitor(service, profiles, ctx.events, {
      windowSize: config.drift.windowSize,
      minSamples: config.drift.minSamples,
      maxFeatures: config.maxFeatures,
    });

    ctx.contribute(ExtensionPoints.explainer, explainer, { name: 'model-insight' });
    for (const route of insightRoutes(service, llms, explainer, monitor, profiles, config.maxFeatures))
      ctx.contribute(ExtensionPoints.routes, route, { name: `model-insight/${route.method} ${route.path}` });

    const TENSOR_PATHS = /^(?:\/infer|\/batch_infer|\/stream_infer|\/v2\/models\/[^/]+(?:\/versions\/[^/]+)?\/infer)$/;
    ctx.contribute(
      ExtensionPoints.hooks,
      {
        // Calls drift does not watch (drift off, generations, explanations) pass straight through, without a frame
        // of their own.
        aroundInference(call, next) {
          if (!inference || !config.drift.enabled || !TENSOR_PATHS.test(call.path)) return next();
          return observed(call, next);
        },
      },
      { name: 'model-insight' },
    );
    const observed = async (call: InferenceCall, next: () => Promise<InferenceAnswer>): Promise<InferenceAnswer> => {
      const answer = await next();
      if (answer) {
        try {
          monitor.observe(call.model, call.version, call.body, answer);
        } catch (err) {
          // Watching traffic must never fail the request it watches.
          ctx.logger.debug({ err, model: call.model }, 'drift: request not observed');
        }
      }
      return answer;
    };
    // The hook stays contributed (the manifest provides it) and does nothing while drift is off.
    if (!config.drift.enabled) return;
    const timer = setInterval(() => {
      try {
        monitor.evaluate();
      } catch (err) {
        ctx.logger.warn({ err }, 'drift: evaluation failed');
      }
    }, config.drift.evaluateIntervalMs).unref();
    ctx.onDispose(() => clearInterval(timer));
  },
});
