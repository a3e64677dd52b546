import { performance } from 'node:perf_hooks';
import type {
  Hooks,
  InferenceAnswer,
  InferenceCall,
  InferenceHookInput,
  InferenceHookOutput,
  ModelRouter,
  RouteChoice,
} from './contributions.js';
import { toNucleusError } from './errors.js';
import { streamedAnswer, streamFailure } from './sse-stream.js';
import type { Contribution, ExtensionPointView } from './extension-points.js';
import { ExtensionPoints } from './extension-points.js';
import type { PluginContext } from './plugin.js';

/** Request headers as a router sees them. */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** Where a route lets the hooks set response headers (a Koa context is one). */
export interface ResponseHeaders {
  set(field: string, value: string): void;
  /** The request's state, where a streamed answer that failed after its headers leaves its status. */
  readonly state?: unknown;
}

/** The HTTP side of an inference request that `aroundInference` hooks see: its path, and response headers to set. */
export interface InferenceExchange extends ResponseHeaders {
  readonly path: string;
}

/** The response header naming the model that answered, when a router sent the request to another name. */
export const MODEL_HEADER = 'x-model-name';
/** The response header naming the version that answered, where the request or a router chose one. */
export const VERSION_HEADER = 'x-model-version';

const isHeaderValue = (value: string) => /^[\t\x20-\x7e]*$/.test(value);

/** How {@link InferenceHooks.run} runs one route. */
export interface InferenceRunOptions {
  /**
   * Answers a shadow copy of a request the route streams, as one complete body (the copy of a stream is run
   * unstreamed); without it streamed requests are not copied. The route records its streamed answer with
   * `recordStreamedAnswer` so that the two can be compared once both have ended.
   */
  unstreamed?: (request: InferenceHookInput) => Promise<Record<string, unknown> | undefined>;
}

/**
 * Shadow copies running at once, at most, per API plugin: copies beyond it are dropped (and reported so), so a slow
 * shadow never builds a queue of copies, and never holds up the answers clients get.
 */
export const MAX_SHADOW_COPIES = 8;

/** A request after the hooks and routers, and the router that chose for it (if one did). */
interface Routed {
  input: InferenceHookInput;
  router?: Contribution<ModelRouter>;
  choice?: RouteChoice;
}

/**
 * The steps every inference route runs around the engine, whichever API it speaks (KServe v2, OpenAI, the native
 * endpoints): `preInference` hooks may rewrite the request, routers may choose another model or version (the first
 * that answers wins), the route runs, then `postInference` hooks may rewrite the response body. Contributions are
 * looked up per request, so hot-reloaded hooks and routers apply at once, and each runs under its plugin's lease.
 *
 * The router that chose is told how the request went (status, duration) and, when it asked for a shadow copy, the
 * copy's answer beside the client's: traffic policies (A/B, canary, shadow) need nothing else from the API plugins.
 *
 * An API plugin makes one with its context and runs each inference request through {@link InferenceHooks.run}.
 */
export class InferenceHooks {
  readonly #hooks: ExtensionPointView<Hooks>;
  readonly #routers: ExtensionPointView<ModelRouter>;
  #shadowsRunning = 0;
  // The hooks that wrap inference, filtered again only when the contributions change (list() is then a new array).
  #listed: readonly Contribution<Hooks>[] | undefined;
  #wrappers: readonly Contribution<Hooks>[] = [];

  constructor(ctx: Pick<PluginContext, 'extensionPoint'>) {
    this.#hooks = ctx.extensionPoint(ExtensionPoints.hooks);
    this.#routers = ctx.extensionPoint(ExtensionPoints.router);
  }

  /** The `preInference` hooks in priority order, then the routers; what the route should run. */
  async before(request: InferenceHookInput, headers: RequestHeaders): Promise<InferenceHookInput> {
    return (await this.#route(request, headers)).input;
  }

  async #route(request: InferenceHookInput, headers: RequestHeaders): Promise<Routed> {
    let input = request;
    for (const c of this.#hooks.list()) {
      if (c.value.preInference) input = await this.#hooks.use(c, (h) => h.preInference!(input));
    }
    for (const c of this.#routers.list()) {
      const choice = await this.#routers.use(c, (r) =>
        r.route({
          model: input.model,
          ...(input.version !== undefined && { version: input.version }),
          headers,
          body: input.body,
        }),
      );
      if (choice) {
        const { shadow: _shadow, ...chosen } = choice;
        return { input: { ...input, ...chosen }, router: c, choice };
      }
    }
    return { input };
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
   * Runs `handle` on the hooked and routed request and returns its response body after the `postInference` hooks.
   * A route that streams its answer itself (SSE) returns undefined from `handle`: it was routed and hooked on the way
   * in, and there is no complete body for `postInference` to see, so that is returned as is. `handle` runs inside the
   * `aroundInference` wrappers. With `response` (a Koa context will do), the answer names the model (when a router
   * chose another) and version that answered in its headers, and wrappers see the request path and may set headers.
   * A shadow copy runs once the client's answer is complete (for a stream: once its last event is written), never
   * before, so it holds nothing up; a streamed request is copied only where `options.unstreamed` says how.
   */
  async run<R extends Record<string, unknown> | undefined>(
    request: InferenceHookInput,
    headers: RequestHeaders,
    handle: (request: InferenceHookInput) => Promise<R>,
    response?: ResponseHeaders | InferenceExchange,
    options: InferenceRunOptions = {},
  ): Promise<R> {
    const { input, router, choice } = await this.#route(request, headers);
    // A name from the request path may hold characters a header cannot (`/versions/%F0%9F%98%80`): such a model or
    // version does not exist, and the route's 404 says so; setting the header would throw first.
    if (input.model !== request.model && isHeaderValue(input.model)) response?.set(MODEL_HEADER, input.model);
    if (input.version !== undefined && isHeaderValue(input.version)) response?.set(VERSION_HEADER, input.version);
    const started = performance.now();
    let body: R;
    try {
      body = (await this.#around(input, headers, response, handle)) as R;
    } catch (err) {
      if (router) this.#observe(router, request.model, input, toNucleusError(err).status, started);
      throw err;
    }
    // A streamed answer is 200 once its headers are out; one that ended with an error event counts as that error.
    const status = body === undefined ? (streamFailure(response?.state) ?? 200) : 200;
    if (router) this.#observe(router, request.model, input, status, started);
    if (body === undefined) {
      const streamed = status < 400 ? streamedAnswer(response?.state) : undefined;
      if (router && choice?.shadow && options.unstreamed && streamed)
        this.#shadow(router, request.model, input, streamed, choice.shadow, options.unstreamed);
      return body;
    }
    if (router && choice?.shadow) this.#shadow(router, request.model, input, body, choice.shadow, handle);
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
    exchange: ResponseHeaders | InferenceExchange | undefined,
    handle: (request: InferenceHookInput) => Promise<InferenceAnswer>,
  ): Promise<InferenceAnswer> {
    const listed = this.#hooks.list();
    if (listed !== this.#listed) {
      this.#listed = listed;
      this.#wrappers = listed.filter((c) => c.value.aroundInference);
    }
    const wrappers = this.#wrappers;
    if (wrappers.length === 0) return handle(input);
    const call: InferenceCall = {
      ...input,
      path: exchange && 'path' in exchange ? exchange.path : '',
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

  /** Each router's live state, by router name, for `GET /status`; routers without one are left out. */
  status(): Record<string, Record<string, unknown>> {
    const out: Record<string, Record<string, unknown>> = {};
    for (const c of this.#routers.list()) {
      const state = c.value.status?.();
      if (state) out[c.value.name] = state;
    }
    return out;
  }

  #observe(
    router: Contribution<ModelRouter>,
    addressed: string,
    input: InferenceHookInput,
    status: number,
    started: number,
  ): void {
    const observe = router.value.observe;
    if (!observe) return;
    const outcome = {
      addressed,
      model: input.model,
      ...(input.version !== undefined && { version: input.version }),
      status,
      durationMs: performance.now() - started,
    };
    // A router that throws must not turn a served request into a failed one.
    void this.#routers.use(router, (r) => r.observe?.(outcome)).catch(() => undefined);
  }

  // The copy runs once the client's answer is on its way, and whatever it answers or throws stays here; beyond
  // MAX_SHADOW_COPIES running, it is dropped.
  #shadow<R extends Record<string, unknown> | undefined>(
    router: Contribution<ModelRouter>,
    addressed: string,
    input: InferenceHookInput,
    primary: Record<string, unknown>,
    target: { model: string; version?: string },
    handle: (request: InferenceHookInput) => Promise<R>,
  ): void {
    const { version: _addressed, ...rest } = input;
    const copy: InferenceHookInput = {
      ...rest,
      model: target.model,
      ...(target.version !== undefined && { version: target.version }),
    };
    const report = (shadow: { body?: Record<string, unknown>; error?: string; dropped?: boolean }, started: number) =>
      this.#routers.use(router, (r) =>
        r.compareShadow?.({
          addressed,
          primary: {
            model: input.model,
            ...(input.version !== undefined && { version: input.version }),
            body: primary,
          },
          shadow: { ...target, ...shadow, durationMs: performance.now() - started },
        }),
      );
    if (this.#shadowsRunning >= MAX_SHADOW_COPIES) {
      const error = `dropped: ${MAX_SHADOW_COPIES} shadow copies were running already`;
      void report({ error, dropped: true }, performance.now()).catch(() => undefined);
      return;
    }
    this.#shadowsRunning++;
    setImmediate(() => {
      const started = performance.now();
      handle(copy)
        .then(
          (body) => report(body === undefined ? { error: 'the copy streamed its answer' } : { body }, started),
          (err: unknown) => report({ error: toNucleusError(err).message }, started),
        )
        .catch(() => undefined)
        .finally(() => this.#shadowsRunning--);
    });
  }
}
