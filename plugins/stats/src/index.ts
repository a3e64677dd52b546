import { badRequest, definePlugin, ExtensionPoints, notFound } from '@nucleus/sdk';
import { CostTuningView } from './cost-tuning-view.js';
import { ProcessSampler } from './process-sampler.js';
import { StatsCollector } from './stats-collector.js';

export type { ProcessSample } from './process-sampler.js';
export {
  type LatencyOverview,
  type LatencyQuery,
  type SeriesLatency,
  StatsCollector,
  type StatsCollectorOptions,
} from './stats-collector.js';

/** The stats plugin's config section (`plugin.stats`), as its schema in package.json defines it. */
export interface StatsConfig {
  windowS: number;
  retentionS: number;
  maxSamples: number;
  snapshotIntervalMs: number;
}

/**
 * Server statistics built from kernel events: `GET /server/stats` (queues, batches, workers, caches,
 * throughput, latency), `GET /server/stats/latency` (p50/p95/p99 per model or endpoint over a chosen
 * window), and periodic `stats.snapshot` events, which the `metrics` WebSocket topic carries.
 */
export default definePlugin<StatsConfig>({
  activate(ctx) {
    const config = ctx.config;
    const collector = new StatsCollector({
      windowS: config.windowS,
      retentionS: config.retentionS,
      maxSamples: config.maxSamples,
    });
    const sampler = new ProcessSampler(Math.min(config.snapshotIntervalMs || 5000, 5000));
    const detach = collector.attach(ctx.events);
    const costTuning = new CostTuningView();
    const detachCostTuning = costTuning.attach(ctx.events);
    ctx.onDispose(() => {
      detach();
      detachCostTuning();
      sampler.close();
    });
    if (config.snapshotIntervalMs > 0) {
      const timer = setInterval(
        () => ctx.events.emit('stats.snapshot', collector.snapshot(sampler.sample())),
        config.snapshotIntervalMs,
      ).unref();
      ctx.onDispose(() => clearInterval(timer));
    }

    ctx.contribute(ExtensionPoints.wsTopics, {
      name: 'metrics',
      events: ['stats.snapshot'],
      description: `a stats snapshot every ${config.snapshotIntervalMs} ms`,
    });
    ctx.contribute(
      ExtensionPoints.routes,
      {
        method: 'GET',
        path: '/server/stats',
        handler: () => ({ ...collector.snapshot(sampler.sample()), ...costTuning.sections() }),
      },
      { name: 'stats/GET /server/stats' },
    );
    ctx.contribute(
      ExtensionPoints.routes,
      {
        method: 'GET',
        path: '/server/stats/latency',
        handler: (http) => {
          const q = http.query as Record<string, string | string[] | undefined>;
          const one = (name: string): string | undefined => {
            const v = q[name];
            if (Array.isArray(v)) throw badRequest('invalid_query', `give ${name} once`, name);
            return v === undefined || v === '' ? undefined : v;
          };
          const window = one('window');
          const windowS = window === undefined ? config.windowS : Number(window);
          if (!Number.isInteger(windowS) || windowS < 1 || windowS > collector.retentionS) {
            throw badRequest(
              'invalid_window',
              `window must be a whole number of seconds from 1 to ${collector.retentionS} (plugin.stats.retentionS); got ${JSON.stringify(window)}`,
              'window',
            );
          }
          const model = one('model');
          const endpoint = one('endpoint');
          if (model !== undefined && endpoint !== undefined)
            throw badRequest('invalid_query', 'ask for a model or an endpoint, not both', 'endpoint');
          const version = one('version');
          const method = one('method');
          const result = collector.latency({
            windowS,
            ...(model === undefined ? {} : { model }),
            ...(version === undefined ? {} : { version }),
            ...(endpoint === undefined ? {} : { endpoint }),
            ...(method === undefined ? {} : { method }),
          });
          if (result === undefined) {
            const known = collector.known();
            throw model !== undefined
              ? notFound(
                  'unknown_model',
                  `no request to model "${model}"${version ? ` version "${version}"` : ''} has been seen; known: ${known.models.join(', ') || 'none yet'}`,
                )
              : notFound(
                  'unknown_endpoint',
                  `no request to endpoint "${endpoint}"${method ? ` with method ${method}` : ''} has been seen; endpoints are route templates, known: ${known.endpoints.join(', ') || 'none yet'}`,
                );
          }
          return result;
        },
      },
      { name: 'stats/GET /server/stats/latency' },
    );
  },
});
