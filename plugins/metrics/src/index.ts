import {
  definePlugin,
  ExtensionPoints,
  optionalService,
  ServiceRefs,
  type PluginContext,
  type ProcessGroup,
} from '@nucleus/sdk';
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client';
import { CostTuningMetrics } from './cost-tuning-metrics.js';
import { DeviceMonitor } from './device-monitor.js';
import { MetricsListener } from './metrics-listener.js';
import { NucleusMetrics } from './nucleus-metrics.js';

export { BucketHistogram } from './bucket-histogram.js';
export { CumulativeCounter } from './cumulative-counter.js';
export { LINT_CLEAN_NAMES, NucleusMetrics, type NucleusMetricsOptions } from './nucleus-metrics.js';

const PROCESS_REGISTRY = Symbol.for('nucleus.metrics.processRegistry');

/**
 * The standard process and Node.js metrics, collected once per process: prom-client's collectors start
 * observers (GC, event-loop delay) that cannot be stopped, so a new set per activation would leak one set
 * per hot reload.
 */
function processRegistry(): Registry {
  const holder = globalThis as { [PROCESS_REGISTRY]?: Registry };
  if (!holder[PROCESS_REGISTRY]) {
    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    // Gauges named like counters; their labelled twins (nodejs_active_handles …) carry the same numbers.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'])
      registry.removeSingleMetric(name);
    holder[PROCESS_REGISTRY] = registry;
  }
  return holder[PROCESS_REGISTRY];
}

const METRICS_TOPIC = 'metrics';

/** What /metrics renders with several front processes: every process's metrics, aggregated at each scrape. */
function clusterRegistry(local: Registry, group: ProcessGroup): Pick<Registry, 'contentType' | 'metrics'> {
  return {
    contentType: local.contentType,
    async metrics() {
      const parts = (await group.gather(METRICS_TOPIC)) as object[];
      return AggregatorRegistry.aggregate(parts).metrics();
    },
  };
}

/** The metrics plugin's config section (`plugin.metrics`), as its schema in package.json defines it. */
export interface MetricsConfig {
  namespace: string;
  path: string;
  port: number | null;
  host: string;
  processMetrics: boolean;
  throughputWindowS: number;
  deviceProbeIntervalS: number;
}

/** Prometheus metrics on GET /metrics (and optionally a port of their own), fed only by the kernel's event bus. */
export default definePlugin({
  deps: {
    plugins: optionalService(ServiceRefs.plugins),
    processGroup: optionalService(ServiceRefs.processGroup),
  },
  async activate(ctx: PluginContext<MetricsConfig>, { plugins, processGroup }) {
    const config = ctx.config;
    // One registry per activation: a hot reload starts clean instead of registering twice.
    const own = new Registry();
    const devices = new DeviceMonitor(
      ctx.extensionPoint(ExtensionPoints.backend),
      config.deviceProbeIntervalS * 1000,
      (d) => metrics.setDevice(d),
      ctx.logger,
    );
    const metrics = new NucleusMetrics(own, {
      namespace: config.namespace,
      throughputWindowS: config.throughputWindowS,
      refreshDevices: () => devices.refresh(),
    });
    // Before the merge below, which copies the metrics registered so far.
    const costTuning = new CostTuningMetrics(own, config.namespace);
    const local = config.processMetrics ? Registry.merge([own, processRegistry()]) : own;
    // Several front processes share the port and a scrape reaches one of them: it answers for all, counters and
    // histograms summed (prom-client's cluster aggregation, each metric by its own `aggregator`).
    const group = processGroup !== undefined && processGroup.size > 1 ? processGroup : undefined;
    const undoProvide = group?.provide(METRICS_TOPIC, () => local.getMetricsAsJSON());
    const registry = group ? clusterRegistry(local, group) : local;
    const detach = metrics.attach(ctx.events);
    const detachCostTuning = costTuning.attach(ctx.events);
    ctx.onDispose(() => {
      detach();
      detachCostTuning();
      devices.close();
      undoProvide?.();
    });
    // Plugins activated before this one announced their states already: read them once.
    if (plugins) metrics.setPlugins(plugins.list());

    ctx.contribute(ExtensionPoints.exporter, { name: 'prometheus' });
    ctx.contribute(
      ExtensionPoints.routes,
      {
        method: 'GET',
        path: config.path,
        access: 'public',
        handler: async (http) => {
          http.type = registry.contentType;
          http.body = await registry.metrics();
        },
      },
      { name: 'metrics' },
    );
    if (config.port !== null) {
      const listener = await MetricsListener.start(registry, config.host, config.port, config.path);
      ctx.logger.info({ url: listener.url }, 'metrics listening on their own port');
      ctx.onDispose(() => listener.close());
    }
  },
});
