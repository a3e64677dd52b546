import type { Contribution, ExtensionPointView, RouteContribution } from '@nucleus/sdk';
import Router, { type Layer } from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { Authenticator } from './auth.js';

type Handle = (ctx: Context) => Promise<void>;

/** Requests remembered by method and path, at most; a server seeing more distinct paths starts over. */
const MAX_REMEMBERED = 1024;

/** The routes as built from the current contributions, and the requests already matched against them. */
interface Dispatch {
  /** The router, for what the remembered matches do not answer: 404, 405 with `Allow`, `OPTIONS`. */
  miss: Middleware;
  router: Router;
  handles: Map<Layer, Handle>;
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
  ) {
    point.onChange(() => (this.dispatch = undefined));
  }

  /**
   * Koa middleware dispatching to the current routes. A path served under other methods only answers 405 with an
   * `Allow` header (the error middleware gives it its body); `OPTIONS` answers with the `Allow` header.
   */
  middleware(): Middleware {
    return (ctx: Context, next: Next) => {
      const d = (this.dispatch ??= this.build());
      const path = ctx.path;
      const key = `${ctx.method} ${path}`;
      let layer = d.matched.get(key);
      if (!layer) {
        // The route the router itself would run: the first one registered whose pattern and methods match.
        layer = d.router.match(path, ctx.method).pathAndMethod.find((l) => l.methods.length > 0);
        if (!layer) return d.miss(ctx, next);
        if (d.matched.size >= MAX_REMEMBERED) d.matched.clear();
        d.matched.set(key, layer);
      }
      ctx.params = layer.paramNames.length ? layer.params(path, layer.captures(path)) : {};
      return d.handles.get(layer)!(ctx);
    };
  }

  /** Method and path of every route, for listings. */
  describe(): Array<{ method: string; path: string; plugin: string }> {
    return [
      ...this.kernelRoutes.map((r) => ({ method: r.method, path: r.path, plugin: 'kernel' })),
      ...this.point.list().map((c) => ({ method: c.value.method, path: c.value.path, plugin: c.pluginId })),
    ];
  }

  private build(): Dispatch {
    const router = new Router();
    const handles = new Map<Layer, Handle>();
    for (const route of this.kernelRoutes) this.add(router, handles, route);
    for (const contribution of this.point.list()) this.add(router, handles, contribution.value, contribution);
    const routes = router.routes() as unknown as Middleware;
    const allowed = router.allowedMethods() as unknown as Middleware;
    return { router, handles, matched: new Map(), miss: (c, n) => routes(c, () => allowed(c, n)) };
  }

  private add(
    router: Router,
    handles: Map<Layer, Handle>,
    route: RouteContribution,
    contribution?: Contribution<RouteContribution>,
  ): void {
    const handle = async (ctx: Context) => {
      ctx.state.route = route.path;
      this.auth.check(ctx, route.access ?? 'user');
      const run = () => route.handler(ctx as never);
      const result = contribution ? await this.point.use(contribution, run) : await run();
      if (result !== undefined && ctx.body === undefined) ctx.body = result;
    };
    router.register(route.path, [route.method], handle as never);
    handles.set(router.stack.at(-1) as Layer, handle);
  }
}
