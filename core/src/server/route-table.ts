import type { Contribution, ExtensionPointView, RouteContribution } from '@nucleus/sdk';
import Router from '@koa/router';
import type { Context, Middleware, Next } from 'koa';
import type { Authenticator } from './auth.js';

/**
 * The server's routes: the kernel's own plus every `routes` contribution. The router is rebuilt
 * lazily after a contribution comes or goes, so a hot-reloaded plugin's routes take over at once;
 * each plugin handler runs under its activation's lease so a reload waits for it.
 */
export class RouteTable {
  private dispatch: Middleware | undefined;
  private router: Router | undefined;
  // The route each registered layer serves, so a request's route is known before its body is read.
  private readonly layers = new Map<unknown, RouteContribution>();
  // The route whose access a request has already passed, so its handler does not check the key again.
  private readonly checked = new WeakMap<Context, RouteContribution>();

  constructor(
    private readonly point: ExtensionPointView<RouteContribution>,
    private readonly kernelRoutes: readonly RouteContribution[],
    private readonly auth: Authenticator,
  ) {
    point.onChange(() => {
      this.dispatch = undefined;
      this.router = undefined;
    });
  }

  /**
   * Checks the key of a request for the route that will take it (throwing 401 or 403), before its body is read;
   * false when no route takes it, so the 404 or 405 that follows needs no body either.
   */
  authenticate(ctx: Context): boolean {
    const match = this.current().match(ctx.path, ctx.method);
    const route = match.route ? this.layers.get(match.pathAndMethod.find((l) => this.layers.has(l))) : undefined;
    if (!route) return false;
    ctx.state.access = route.access ?? 'user';
    this.auth.check(ctx, route.access ?? 'user');
    this.checked.set(ctx, route);
    return true;
  }

  /**
   * Koa middleware dispatching to the current routes. A path served under other methods only answers 405 with an
   * `Allow` header (the error middleware gives it its body); `OPTIONS` answers with the `Allow` header.
   */
  middleware(): Middleware {
    return (ctx: Context, next: Next) => {
      if (!this.dispatch) {
        const router = this.current();
        const routes = router.routes() as unknown as Middleware;
        const allowed = router.allowedMethods() as unknown as Middleware;
        this.dispatch = (c, n) => routes(c, () => allowed(c, n));
      }
      return this.dispatch(ctx, next);
    };
  }

  /** Method and path of every route, for listings. */
  describe(): Array<{ method: string; path: string; plugin: string }> {
    return [
      ...this.kernelRoutes.map((r) => ({ method: r.method, path: r.path, plugin: 'kernel' })),
      ...this.point.list().map((c) => ({ method: c.value.method, path: c.value.path, plugin: c.pluginId })),
    ];
  }

  private current(): Router {
    if (!this.router) {
      this.layers.clear();
      this.router = this.build();
    }
    return this.router;
  }

  private build(): Router {
    const router = new Router();
    for (const route of this.kernelRoutes) this.add(router, route);
    for (const contribution of this.point.list()) this.add(router, contribution.value, contribution);
    return router;
  }

  private add(router: Router, route: RouteContribution, contribution?: Contribution<RouteContribution>): void {
    const handle = async (ctx: Context) => {
      ctx.state.route = route.path;
      if (this.checked.get(ctx) !== route) this.auth.check(ctx, route.access ?? 'user');
      const run = () => route.handler(ctx as never);
      const result = contribution ? await this.point.use(contribution, run) : await run();
      if (result !== undefined && ctx.body === undefined) ctx.body = result;
    };
    this.layers.set(router.register(route.path, [route.method], handle as never), route);
  }
}
