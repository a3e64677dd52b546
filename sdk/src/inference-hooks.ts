import type {
  Hooks,
  InferenceAnswer,
  InferenceCall,
  InferenceHookInput,
  InferenceHookOutput,
  ModelRouter,
} from './contributions.js';
import type { ExtensionPointView } from './extension-points.js';
import { ExtensionPoints } from './extension-points.js';
import type { PluginContext } from './plugin.js';

/** Request headers as a router sees them. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** The HTTP side of an inference request that `aroundInference` hooks see: its path, and response headers to set. */
export interface InferenceExchange {
  readonly path: string;
  set(name: string, value: string): void;
}

/**
 * The steps every inference route runs around the engine, whichever API it speaks (KServe v2, OpenAI, the native
 * endpoints): `preInference` hooks may rewrite the request, routers may choose another model or version (the first
 * that answers wins), the route runs, then `postInference` hooks may rewrite the response body. Contributions are
 * looked up per request, so hot-reloaded hooks and routers apply at once, and each runs under its plugin's lease.
 *
 * An API plugin makes one with its context and runs each inference request through {@link InferenceHooks.run}.
 */
export class InferenceHooks {
  readonly #hooks: ExtensionPointView<Hooks>;
  readonly #routers: ExtensionPointView<ModelRouter>;

  constructor(ctx: Pick<PluginContext, 'extensionPoint'>) {
    this.#hooks = ctx.extensionPoint(ExtensionPoints.hooks);
    this.#routers = ctx.extensionPoint(ExtensionPoints.router);
  }

  /** The `preInference` hooks in priority order, then the routers; what the route should run. */
  async before(request: InferenceHookInput, headers: RequestHeaders): Promise<InferenceHookInput> {
    let input = request;
    for (const c of this.#hooks.list()) {
      if (c.value.preInference) input = await this.#hooks.use(c, (h) => h.preInference!(input));
    }
    for (const c of this.#routers.list()) {
      const choice = await this.#routers.use(c, (r) =>
        r.route({ model: input.model, ...(input.version !== undefined && { version: input.version }), headers }),
      );
      if (choice) return { ...input, model: choice.model, version: choice.version };
    }
    return input;
  }

  /** The `postInference` hooks in priority order, over a complete response. */
  async after(output: InferenceHookOutput): Promise<InferenceHookOutput> {
    let result = output;
    for (const c of this.#hooks.list()) {
      if (c.value.postInference) result = await this.#hooks.use(c, (h) => h.postInference!(result));
    }
    return result;
  }

  /**
   * Runs `handle` on the hooked and routed request, inside the `aroundInference` wrappers, and returns its response
   * body after the `postInference` hooks. A route that streams its answer itself (SSE) returns undefined from
   * `handle`: it was routed and hooked on the way in, and there is no complete body for `postInference` to see, so that
   * is returned as is. `exchange` (a Koa context will do) gives wrappers the request path and response headers;
   * without it they see an empty path and set nothing.
   */
  async run<R extends Record<string, unknown> | undefined>(
    request: InferenceHookInput,
    headers: RequestHeaders,
    handle: (request: InferenceHookInput) => Promise<R>,
    exchange?: InferenceExchange,
  ): Promise<R> {
    const input = await this.before(request, headers);
    const body = (await this.#around(input, headers, exchange, handle)) as R;
    if (body === undefined) return body;
    const output = await this.after({
      model: input.model,
      ...(input.version !== undefined && { version: input.version }),
      body,
    });
    return output.body as R;
  }

  // The `aroundInference` wrappers in priority order, the first outermost, around `handle`.
  #around(
    input: InferenceHookInput,
    headers: RequestHeaders,
    exchange: InferenceExchange | undefined,
    handle: (request: InferenceHookInput) => Promise<InferenceAnswer>,
  ): Promise<InferenceAnswer> {
    const wrappers = this.#hooks.list().filter((c) => c.value.aroundInference);
    if (wrappers.length === 0) return handle(input);
    const call: InferenceCall = {
      ...input,
      path: exchange?.path ?? '',
      headers,
      setHeader: (name, value) => exchange?.set(name, value),
    };
    const step = (i: number): Promise<InferenceAnswer> => {
      const c = wrappers[i];
      if (!c) return handle(input);
      return this.#hooks.use(c, (h) => h.aroundInference!(call, () => step(i + 1)));
    };
    return step(0);
  }
}
