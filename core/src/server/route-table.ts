import {
  type CatalogRoute,
  type Contribution,
  type ExtensionPointView,
  NucleusError,
  type RouteCatalog,
  type RouteContribution,
} from '@nucleus/sdk';
import Router, { type Layer } from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { Authenticator } from './auth.js';

/** A registered route and what runs it. */
interface Served {
  route: RouteContribution;
  handle: (ctx: Context) => Promise<void>;
}

/** An admin route that changes what the process serves or how: it would reach only the process that took it. */
function changesState(route: RouteContribution): boolean {
  return route.access === 'admin' && route.method !== 'GET' && route.readOnly !== true;
}

function multiProcessAdmin(processes: number): NucleusError {
  return new NucleusError(
    409,
    'multi_process_admin',
    `this server runs ${processes} front processes (server.processes) and this admin operation would change only the one that took the request; change the config (models, plugins, settings) and restart, or run with server.processes: 1 to change them while serving`,
  );
}

/** Where a request keeps the route whose access it has passed, so the route's handler does not check the key again. */
const CHECKED = Symbol('checked route');
type Checked = Context & { [CHECKED]?: RouteContribution };

/** Requests remembered by method and path, at most; a server seeing more distinct paths starts over. */
const MAX_REMEMBERED = 1024;

/** The routes as built from the current contributions, and the requests already matched against them. */
interface Dispatch {
  /** The router, for what the remembered matches do not answer: 404, 405 with `Allow`, `OPTIONS`. */
  miss: Middleware;
  router: Router;
  served: Map<Layer, Served>;
  /** `METHOD path` → the route that answers it, found once by the router (it walks every route's pattern). */
  matched: Map<string, Layer>;
}

/**
 * The server's routes: the kernel's own plus every `routes` contribution. The router is rebuilt
 * lazily after a contribution comes or goes, so a hot-reloaded plugin's routes take over at once;
 * each plugin handler runs under its activation's lease so a reload waits for it.
 */
export class RouteTable {
  private dispatch: Dispatch | undefined;

  constructor(
    private readonly point: ExtensionPointView<RouteContribution>,
    private readonly kernelRoutes: readonly RouteContribution[],
    private readonly auth: Authenticator,
    /** Front processes serving the port (`server.processes`): above 1, admin routes that change state are refused. */
    private readonly processes = 1,
  ) {
    point.onChange(() => (this.dispatch = undefined));
  }

  /**
   * Checks the key of a request for the route that will take it (throwing 401 or 403), before its body is read;
   * false when no route takes it, so the 404 or 405 that follows needs no body either.
   */
  authenticate(ctx: Context): boolean {
    const d = this.current();
    const layer = this.find(d, ctx);
    if (!layer) return false;
    const { route } = d.served.get(layer)!;
    ctx.state.access = route.access ?? 'user';
    this.auth.check(ctx, route.access ?? 'user');
    (ctx as Checked)[CHECKED] = route;
    return true;
  }

  /**
   * Koa middleware dispatching to the current routes. A path served under other methods only answers 405 with an
   * `Allow` header (the error middleware gives it its body); `OPTIONS` answers with the `Allow` header.
   */
  middleware(): Middleware {
    return (ctx: Context, next: Next) => {
      const d = this.current();
      const layer = this.find(d, ctx);
      if (!layer) return d.miss(ctx, next);
      const path = ctx.path;
      ctx.params = layer.paramNames.length ? layer.params(path, layer.captures(path)) : {};
      return d.served.get(layer)!.handle(ctx);
    };
  }

  /** The read-only view plugins get as `Services.routes`: what is served now, with each route's doc. */
  catalog(): RouteCatalog {
    const entry = (route: RouteContribution, plugin: string): CatalogRoute => ({
      method: route.method,
      path: route.path,
      access: route.access ?? 'user',
      plugin,
      ...(route.doc && { doc: route.doc }),
    });
    return {
      list: () => [
        ...this.kernelRoutes.map((r) => entry(r, 'kernel')),
        ...this.point.list().map((c) => entry(c.value, c.pluginId)),
      ],
      onChange: (listener) => this.point.onChange(() => listener()),
    };
  }

  /** Method and path of every route, for listings. */
  describe(): Array<{ method: string; path: string; plugin: string }> {
    return [
      ...this.kernelRoutes.map((r) => ({ method: r.method, path: r.path, plugin: 'kernel' })),
      ...this.point.list().map((c) => ({ method: c.value.method, path: c.value.path, plugin: c.pluginId })),
    ];
  }

  private current(): Dispatch {
    return (this.dispatch ??= this.build());
  }

  // The route the router itself would run: the first one registered whose pattern and methods match.
  private find(d: Dispatch, ctx: Context): Layer | undefined {
    const key = `${ctx.method} ${ctx.path}`;
    let layer = d.matched.get(key);
    if (!layer) {
      layer = d.router.match(ctx.path, ctx.method).pathAndMethod.find((l) => l.methods.length > 0);
      if (!layer) return undefined;
      if (d.matched.size >= MAX_REMEMBERED) d.matched.clear();
      d.matched.set(key, layer);
    }
    return layer;
  }

  private build(): Dispatch {
    const router = new Router();
    const served = new Map<Layer, Served>();
    for (const route of this.kernelRoutes) this.add(router, served, route);
    for (const contribution of this.point.list()) this.add(router, served, contribution.value, contribution);
    const routes = router.routes() as unknown as Middleware;
    const allowed = router.allowedMethods() as unknown as Middleware;
    return { router, served, matched: new Map(), miss: (c, n) => routes(c, () => allowed(c, n)) };
  }

  private add(
    router: Router,
    served: Map<Layer, Served>,
    route: RouteContribution,
    contribution?: Contribution<RouteContribution>,
  ): void {
    const answer = (ctx: Context, result: unknown) => {
      if (result !== undefined && ctx.body === undefined) ctx.body = result;
    };
    // No async frame of its own: a handler that answers at once (the probes) makes no promise but the one returned.
    const handle = (ctx: Context): Promise<void> => {
      try {
        ctx.state.route = route.path;
        if ((ctx as Checked)[CHECKED] !== route) this.auth.check(ctx, route.access ?? 'user');
        if (this.processes > 1 && changesState(route)) throw multiProcessAdmin(this.processes);
        const run = () => route.handler(ctx as never);
        const result: unknown = contribution ? this.point.use(contribution, run) : run();
        if (typeof (result as { then?: unknown } | undefined)?.then === 'function')
          return Promise.resolve(result).then((value) => answer(ctx, value));
        answer(ctx, result);
        return Promise.resolve();
      } catch (err) {
        return Promise.reject(err);
      }
    };
    served.set(router.register(route.path, [route.method], handle as never) as Layer, { route, handle });
  }
}
