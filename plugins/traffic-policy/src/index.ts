import { definePlugin, ExtensionPoints, optionalService, type PluginContext, ServiceRefs } from '@nucleus/sdk';
import { PolicyStore } from './policy-store.js';
import { TrafficRouter } from './traffic-router.js';
import { trafficRoutes } from './traffic-routes.js';
import { checkPolicy, type TrafficPolicy } from './traffic-policy.js';

export { CanaryController, type CanaryState, type Rollback } from './canary-controller.js';
export { ModelTraffic, type VariantRole } from './model-traffic.js';
export { OutcomeWindow } from './outcome-window.js';
export { PolicyStore } from './policy-store.js';
export { agreement, tokenAgreement, type Agreement } from './shadow-agreement.js';
export { stickyBucket } from './sticky-bucket.js';
export { TrafficRouter, type TrafficRouterOptions } from './traffic-router.js';
export { trafficRoutes } from './traffic-routes.js';
export {
  CANARY_DEFAULTS,
  checkPolicy,
  SHADOW_DEFAULT_PERCENT,
  type CanaryPolicy,
  type CanarySettings,
  type ShadowPolicy,
  type Target,
  type TrafficPolicy,
  type WeightsPolicy,
} from './traffic-policy.js';

/** The traffic-policy plugin's config section (`plugin.traffic-policy`), as its schema in package.json defines it. */
export interface TrafficPolicyConfig {
  stickyHeader: string;
  stateFile: string | null;
  policies: Record<string, TrafficPolicy>;
}

/** Versions side by side under one model name: A/B splits, canaries and shadows, on every API's inference routes. */
export default definePlugin({
  deps: { models: optionalService(ServiceRefs.models) },
  activate(ctx: PluginContext<TrafficPolicyConfig>, { models }) {
    const router = new TrafficRouter({ stickyHeader: ctx.config.stickyHeader, events: ctx.events, logger: ctx.logger });
    const store = ctx.config.stateFile === null ? undefined : new PolicyStore(ctx.config.stateFile, ctx.logger);
    const configured = Object.fromEntries(
      Object.entries(ctx.config.policies).map(([model, policy]) => [model, checkPolicy(policy)]),
    );
    // Stored and config policies are not checked against the loaded models: those may still be loading.
    for (const [model, policy] of Object.entries(store?.restore(configured) ?? configured)) router.set(model, policy);
    ctx.onDispose(() => router.stop());
    ctx.contribute(ExtensionPoints.router, router, { name: 'traffic-policy' });
    for (const route of trafficRoutes(router, () => models, store))
      ctx.contribute(ExtensionPoints.routes, route, { name: `admin-traffic/${route.method} ${route.path}` });
  },
});
