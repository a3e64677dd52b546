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
      if (!this.dispatch) {
        const router = this.build();
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

  private build(): Router {
    const router = new Router();
    for (const route of this.kernelRoutes) this.add(router, route);
    for (const contribution of this.point.list()) this.add(router, contribution.value, contribution);
    return router;
  }

  private add(router: Router, route: RouteContribution, contribution?: Contribution<RouteContribution>): void {
    const handle = async (ctx: Context) => {
      ctx.state.route = route.path;
      this.auth.check(ctx, route.access ?? 'user');
      const run = () => route.handler(ctx as never);
      const result = contribution ? await this.point.use(contribution, run) : await run();
      if (result !== undefined && ctx.body === undefined) ctx.body = result;
    };
    router.register(route.path, [route.method], handle as never);
  }
}
