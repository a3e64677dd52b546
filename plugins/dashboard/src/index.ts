import {
  callerOf,
  definePlugin,
  ExtensionPoints,
  notFound,
  optionalService,
  type PluginSummary,
  type RouteContribution,
  ServiceRefs,
} from '@nucleus/sdk';
import { LogTail } from './log-tail.js';
import { ModelFiles } from './model-files.js';
import { OverviewHistory, type OverviewSample } from './overview-history.js';
import { promptText } from './prompt-text.js';
import { type RequestBatch, RequestFeed } from './request-feed.js';
import { sessionCredentials, sessionRoutes } from './session-routes.js';
import { type Session, SessionStore } from './session-store.js';
import { StaticAssets } from './static-assets.js';

export { OverviewHistory, type OverviewSample } from './overview-history.js';
export { ModelFiles } from './model-files.js';
export { MAX_PROMPT_CHARS, promptText } from './prompt-text.js';
export { type RequestBatch, RequestFeed, type RequestSummary } from './request-feed.js';
export { SessionStore } from './session-store.js';

declare module '@nucleus/sdk' {
  interface NucleusEvents {
    /** One overview sample of the dashboard (its `dashboard` topic on /ws). */
    'dashboard.sample': OverviewSample;
    /** A request's prompt text, while an admin has `plugin.dashboard.showPrompts` on (its `dashboard-prompts` topic). */
    'dashboard.prompt': { requestId: string; prompt: string };
    /** Requests answered lately, one tenant's, a few batches a second at most (its `dashboard-requests` topic). */
    'dashboard.requests': RequestBatch;
  }
}

// The page lists this many; a batch never needs to carry more.
const MAX_RECENT_REQUESTS = 100;

/** The dashboard plugin's config section (`plugin.dashboard`), as its schema in package.json defines it. */
export interface DashboardConfig {
  historyS: number;
  sessionIdleS: number;
  maxSessions: number;
  logLines: number;
  requestsIntervalMs: number;
  showPrompts: boolean;
}

/**
 * The web dashboard: the page at `/` and `/dashboard` with its modules and vendored libraries, sign-in with an API key
 * for a session cookie (a `credentials` source, so the cookie authenticates the page's API calls and its `/ws`), an
 * overview sample per stats snapshot pushed on the `dashboard` topic and kept for a fresh page, and read-only model
 * and plugin listings for user keys (admins act through the admin API).
 */
export default definePlugin({
  deps: { models: optionalService(ServiceRefs.models), plugins: ServiceRefs.plugins },
  async activate(ctx, { models, plugins }) {
    const config = ctx.config as unknown as DashboardConfig;
    const assets = await StaticAssets.load();
    // Sessions outlive a reload of the plugin (a new version, a config change): nobody is signed out by one.
    const sessions = new SessionStore(
      { idleMs: config.sessionIdleS * 1000, max: config.maxSessions },
      ctx.keep('sessions-v1', () => new Map<string, Session>()),
    );
    const history = new OverviewHistory(config.historyS);
    const logs = new LogTail(config.logLines);
    const files = new ModelFiles();
    // The recent-requests list goes out in batches: one message per request and open page would cost the server
    // more than the requests themselves under load.
    const feed = new RequestFeed({
      intervalMs: config.requestsIntervalMs,
      max: MAX_RECENT_REQUESTS,
      emit: (batch) => ctx.events.emit('dashboard.requests', batch),
    });
    // Kept only while a page (or any socket) subscribes to the topic: nobody is shown the others.
    let requestsWatched = false;
    const offEnd = ctx.events.on('request.end', (end) => {
      history.onRequestEnd(end);
      if (requestsWatched) feed.add(end);
    });
    const offSnapshot = ctx.events.on('stats.snapshot', (snapshot) =>
      ctx.events.emit('dashboard.sample', history.add(snapshot)),
    );
    const offLog = ctx.events.on('log.line', (line) => logs.add(line));
    ctx.onDispose(() => {
      offEnd();
      offSnapshot();
      offLog();
      feed.dispose();
    });

    // Prompt text is shown only while an admin has turned it on; the switch is kept here and refreshed on each
    // config change that touches it (so it applies at once), since reading the config on every request is not free.
    // /ws shows a user key the prompts of its own requests only, as with every event that names a request.
    const switchPath = `plugin.${ctx.id}.showPrompts`;
    const readShowPrompts = () => (ctx.configValue(switchPath) as boolean | undefined) === true;
    let promptsOn = readShowPrompts();
    const offConfig = ctx.events.on('config.changed', ({ path }) => {
      if (switchPath === path || switchPath.startsWith(`${path}.`) || path.startsWith(`${switchPath}.`))
        promptsOn = readShowPrompts();
    });
    ctx.onDispose(offConfig);
    const showPrompts = () => promptsOn;
    ctx.contribute(
      ExtensionPoints.hooks,
      {
        // While prompts are off (the default) a request passes straight through, without a frame of its own.
        onRequest(http, next) {
          if (!promptsOn) return next();
          const prompt = promptText((http.request as { body?: unknown }).body);
          const requestId = (http.state as { requestId?: string }).requestId;
          if (prompt !== undefined && requestId !== undefined) {
            ctx.events.emit('dashboard.prompt', { requestId, prompt });
            if (requestsWatched) feed.prompt(requestId, prompt);
          }
          return next();
        },
      },
      { name: 'dashboard/prompts' },
    );

    ctx.contribute(ExtensionPoints.credentials, sessionCredentials(sessions));
    ctx.contribute(ExtensionPoints.wsTopics, {
      name: 'dashboard',
      events: ['dashboard.sample'],
      description: 'an overview sample per stats snapshot (plugin.stats.snapshotIntervalMs)',
    });
    ctx.contribute(ExtensionPoints.wsTopics, {
      name: 'dashboard-requests',
      events: ['dashboard.requests'],
      watched: (watched) => {
        requestsWatched = watched;
      },
      description:
        'requests answered lately, in batches of one tenant at most every plugin.dashboard.requestsIntervalMs, with their prompt text while plugin.dashboard.showPrompts is on',
    });
    ctx.contribute(ExtensionPoints.wsTopics, {
      name: 'logs',
      events: ['log.line'],
      // Server-wide lines (models loaded, errors) are the operator's, not a tenant's.
      access: 'admin',
      description: 'each line the server logs at logging.level or above: time, level, message, component, request',
    });
    ctx.contribute(ExtensionPoints.wsTopics, {
      name: 'dashboard-prompts',
      events: ['dashboard.prompt'],
      description: "requests' prompt text, while plugin.dashboard.showPrompts is on",
    });

    const page = (path: string): RouteContribution => ({
      method: 'GET',
      path,
      access: 'public',
      handler: (http) => {
        serve(http, assets, '/dashboard');
        http.set('content-security-policy', assets.contentSecurityPolicy);
        http.set('x-content-type-options', 'nosniff');
        http.set('referrer-policy', 'no-referrer');
      },
    });
    const routes: RouteContribution[] = [
      page('/'),
      page('/dashboard'),
      ...assets.paths().map(
        (path): RouteContribution => ({
          method: 'GET',
          path,
          access: 'public',
          handler: (http) => serve(http, assets, path),
        }),
      ),
      ...sessionRoutes(sessions),
      {
        method: 'GET',
        path: '/dashboard/api/history',
        handler: () => ({ historyS: config.historyS, samples: history.list() }),
      },
      {
        method: 'GET',
        path: '/dashboard/api/logs',
        access: 'admin',
        handler: () => ({ lines: logs.list(), showPrompts: showPrompts() }),
      },
      {
        method: 'GET',
        path: '/dashboard/api/models',
        // Where a model's files are is for admins (as /ready keeps paths from the public); how much they weigh is
        // everyone's.
        handler: async (http) => {
          const admin = callerOf(http)?.role !== 'user';
          const list = await Promise.all(
            (models?.list() ?? []).map(async (m) => {
              const versions = await Promise.all(
                m.versions.map(async ({ source, ...v }) => {
                  const fileBytes = await files.bytes(source);
                  return {
                    ...v,
                    ...(admin && source !== undefined && { source }),
                    ...(fileBytes !== undefined && { fileBytes }),
                  };
                }),
              );
              const serving = versions.find((v) => v.version === m.defaultVersion) ?? versions.at(-1);
              return { ...m, versions, ...(serving?.fileBytes !== undefined && { fileBytes: serving.fileBytes }) };
            }),
          );
          return { models: list };
        },
      },
      {
        method: 'GET',
        path: '/dashboard/api/plugins',
        // Where a plugin's files are is for admins, as with models.
        handler: (http) => {
          const list = plugins.list();
          if (callerOf(http)?.role !== 'user') return { plugins: list };
          return { plugins: list.map(({ dir: _dir, ...p }: PluginSummary & { dir?: string }) => p) };
        },
      },
      {
        method: 'GET',
        path: '/dashboard/api/plugins/:id/config',
        access: 'admin',
        handler: (http) => {
          const id = http.params.id!;
          if (!plugins.list().some((p) => p.id === id))
            throw notFound(
              'plugin_not_found',
              `no plugin '${id}' (plugins: ${plugins
                .list()
                .map((p) => p.id)
                .join(', ')})`,
            );
          return plugins.config?.(id) ?? { schema: { type: 'object', properties: {} }, values: {}, runtimeKeys: [] };
        },
      },
    ];
    for (const route of routes)
      ctx.contribute(ExtensionPoints.routes, route, { name: `dashboard/${route.method} ${route.path}` });
  },
});

// Compressed when the browser takes gzip; revalidated by ETag, since a reload of the plugin may change any file.
function serve(http: Parameters<RouteContribution['handler']>[0], assets: StaticAssets, path: string): void {
  const asset = assets.get(path)!;
  http.set('etag', asset.etag);
  http.set('cache-control', 'no-cache');
  http.set('vary', 'accept-encoding');
  http.type = asset.type;
  if (http.get('if-none-match') === asset.etag) {
    http.status = 304;
    return;
  }
  if (http.acceptsEncodings('gzip', 'identity') === 'gzip') {
    http.set('content-encoding', 'gzip');
    http.body = asset.gzip;
  } else http.body = asset.body;
}
