import type { Backend } from './backend.js';
import type { Explainer } from './explainer.js';
import type { BatchRunner } from './batch-runner.js';
import type {
  BuiltinModel,
  CachePolicySpec,
  DraftProposerSpec,
  ErrorBodyFormat,
  Exporter,
  Hooks,
  ModelFormat,
  ModelRouter,
  ModelTransform,
  ReplicaRouter,
  RouteContribution,
  SchedulerStrategy,
} from './contributions.js';
import type { CredentialSource } from './credential-source.js';
import type { ModelSourceProvider } from './model-source-provider.js';
import type { WsTopic } from './observability.js';
import type { WsRequestHandler } from './ws-requests.js';
import type { RequestGate } from './request-gate.js';

/** A typed handle naming an extension point; the type parameter is what contributors provide. */
export interface ExtensionPointRef<T> {
  readonly id: string;
  /** Phantom field carrying the contribution type; never set. */
  readonly __type?: T;
}

/** Declares an extension point handle (for a plugin's own sub-extensions). */
export function extensionPoint<T>(id: string): ExtensionPointRef<T> {
  return Object.freeze({ id });
}

/** The extension points the kernel defines. */
export const ExtensionPoints = {
  backend: extensionPoint<Backend>('backend'),
  /** Queue order (`scheduler.strategy`). */
  schedulerStrategy: extensionPoint<SchedulerStrategy>('schedulerStrategy'),
  /** Which replica of a model takes a request (`workers.routing`, `workers.llmRouting`). */
  replicaRouter: extensionPoint<ReplicaRouter>('replicaRouter'),
  /** Cache eviction policies, as specs a cache in any thread makes its own instance from (`cache.prefix.policy`). */
  cachePolicy: extensionPoint<CachePolicySpec>('cachePolicy'),
  /** Speculative decoding methods a model can ask for (`models[].speculative`). */
  draftProposer: extensionPoint<DraftProposerSpec>('draftProposer'),
  hooks: extensionPoint<Hooks>('hooks'),
  exporter: extensionPoint<Exporter>('exporter'),
  modelFormat: extensionPoint<ModelFormat>('modelFormat'),
  /** Where models with a URI scheme come from (`hf://`, `https://`): fetched into a local cache, then read by a format. */
  modelSource: extensionPoint<ModelSourceProvider>('modelSource'),
  /** Models served when none is configured (`builtinModels`). */
  builtinModel: extensionPoint<BuiltinModel>('builtinModel'),
  routes: extensionPoint<RouteContribution>('routes'),
  /** Error bodies in an API's own shape, by path prefix. */
  errorBody: extensionPoint<ErrorBodyFormat>('errorBody'),
  router: extensionPoint<ModelRouter>('router'),
  /** Graph rewrites a model can ask for at load (`models[].quantize`). */
  modelTransform: extensionPoint<ModelTransform>('modelTransform'),
  /** WebSocket topics plugins add to `/ws`. */
  wsTopics: extensionPoint<WsTopic>('wsTopics'),
  /** Request types plugins serve on `/ws` (inference: `generate`, `chat`, `infer`). */
  wsHandlers: extensionPoint<WsRequestHandler>('wsHandlers'),
  /** Where a request's credential comes from besides `Authorization` (a session cookie): asked in priority order. */
  credentials: extensionPoint<CredentialSource>('credentials'),
  /** Rate limits and quotas every protocol asks before it runs a user request (`admitRequest`). */
  requestGate: extensionPoint<RequestGate>('requestGate'),
  /** Per-feature explanations of tensor models' answers (`explain: true` on `/infer`). */
  explainer: extensionPoint<Explainer>('explainer'),
  /** Offline batch jobs over files of rows (`nucleus batch run`). */
  batchRunner: extensionPoint<BatchRunner>('batchRunner'),
} as const;

/** One contribution at an extension point, with who made it. */
export interface Contribution<T> {
  readonly value: T;
  /** Unique among one plugin's contributions to one point. */
  readonly name: string;
  readonly priority: number;
  readonly pluginId: string;
  readonly pluginVersion: string;
}

/** A live, read-only view of an extension point. Contributions come and go under hot reload: look them up per use. */
export interface ExtensionPointView<T> {
  readonly id: string;
  /** Every contribution, highest priority first. */
  list(): readonly Contribution<T>[];
  /** The highest-priority contribution. */
  first(): Contribution<T> | undefined;
  /** The contribution with this name (from any plugin). */
  find(name: string): Contribution<T> | undefined;
  /**
   * Runs `fn` with a contribution while holding it: a plugin being reloaded or disabled waits for
   * such uses to finish before it is disposed. With `held`, the use is listed there while it lasts, so the work
   * that holds it can tell the kernel not to wait for it (a request that disables a plugin whose hook wraps it).
   */
  use<R>(contribution: Contribution<T>, fn: (value: T) => R | Promise<R>, held?: unknown[]): Promise<R>;
  /** Called whenever a contribution comes or goes; returns the function that unsubscribes. */
  onChange(listener: (change: 'added' | 'removed', contribution: Contribution<T>) => void): () => void;
}
