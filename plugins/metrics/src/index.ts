import { definePlugin, ExtensionPoints, PLUGIN_STATES } from '@nucleus/sdk';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Prometheus metrics on GET /metrics, fed only by the kernel's event bus. */
export default definePlugin({
  activate(ctx) {
    // One registry per activation: a hot reload starts clean instead of registering twice.
    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'nucleus_' });
    const duration = new Histogram({
      name: 'nucleus_http_request_duration_seconds',
      help: 'HTTP request latency by route, method and status.',
      labelNames: ['route', 'method', 'status'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    });
    const errors = new Counter({
      name: 'nucleus_http_errors_total',
      help: 'HTTP error responses by route and error code.',
      labelNames: ['route', 'code'],
      registers: [registry],
    });
    const pluginState = new Gauge({
      name: 'nucleus_plugin_state',
      help: '1 for the state each plugin is in, 0 for the others.',
      labelNames: ['plugin', 'version', 'state'],
      registers: [registry],
    });
    const reloads = new Counter({
      name: 'nucleus_plugin_reloads_total',
      help: 'Plugin hot reloads by plugin and outcome.',
      labelNames: ['plugin', 'outcome'],
      registers: [registry],
    });

    const unsubscribe = [
      ctx.events.on('request.end', (e) => {
        duration.observe({ route: e.route, method: e.method, status: String(e.status) }, e.durationMs / 1000);
        if (e.errorCode) errors.inc({ route: e.route, code: e.errorCode });
      }),
      ctx.events.on('plugin.state', (e) => {
        for (const state of PLUGIN_STATES) pluginState.set({ plugin: e.id, version: e.version, state }, state === e.state ? 1 : 0);
      }),
      ctx.events.on('plugin.reloaded', (e) => reloads.inc({ plugin: e.id, outcome: 'ok' })),
      ctx.events.on('plugin.reloadFailed', (e) => reloads.inc({ plugin: e.id, outcome: 'failed' })),
    ];
    ctx.onDispose(() => unsubscribe.forEach((off) => off()));

    ctx.contribute(ExtensionPoints.routes, {
      method: 'GET',
      path: '/metrics',
      access: 'public',
      handler: async (http) => {
        http.type = registry.contentType;
        http.body = await registry.metrics();
      },
    });
  },
});
