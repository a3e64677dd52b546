import {
  ExtensionPoints,
  type ExtensionPointView,
  type Hooks,
  type InferenceHookInput,
  type ModelRouter,
  type PluginContext,
  type RouteContext,
} from '@nucleus/sdk';

/** The request as the route will run it, after hooks and routers had their say. */
export type RoutedRequest = InferenceHookInput;

/**
 * The steps around an inference route: `preInference` hooks may rewrite the body, routers may choose another model
 * or version (first answer wins), the route runs, then `postInference` hooks may rewrite the response body.
 * Contributions are looked up per request, so hot-reloaded hooks and routers apply at once.
 */
export class InferencePipeline {
  readonly #hooks: ExtensionPointView<Hooks>;
  readonly #routers: ExtensionPointView<ModelRouter>;

  constructor(ctx: Pick<PluginContext, 'extensionPoint'>) {
    this.#hooks = ctx.extensionPoint(ExtensionPoints.hooks);
    this.#routers = ctx.extensionPoint(ExtensionPoints.router);
  }

  /** Runs `handle` on the hooked and routed request and returns the hooked response body. */
  async run(
    http: RouteContext,
    request: RoutedRequest,
    handle: (request: RoutedRequest) => Promise<Record<string, unknown>>,
  ): Promise<Record<string, unknown>> {
    let input = request;
    for (const c of this.#hooks.list()) {
      if (c.value.preInference) input = await this.#hooks.use(c, (h) => h.preInference!(input));
    }
    for (const c of this.#routers.list()) {
      const choice = await this.#routers.use(c, (r) =>
        r.route({
          model: input.model,
          ...(input.version !== undefined && { version: input.version }),
          headers: http.headers,
        }),
      );
      if (choice) {
        input = { ...input, model: choice.model, version: choice.version };
        break;
      }
    }
    let output = {
      model: input.model,
      ...(input.version !== undefined && { version: input.version }),
      body: await handle(input),
    };
    for (const c of this.#hooks.list()) {
      if (c.value.postInference) output = await this.#hooks.use(c, (h) => h.postInference!(output));
    }
    return output.body;
  }
}
