import type { ConfigReader } from '../../../kernel/config/index.js';
import type {
  Backend,
  BuiltinModel,
  CachePolicySpec,
  DraftProposerSpec,
  EventBus,
  ExtensionPointView,
  Logger,
  ModelTransform,
  ReplicaRouter,
  SchedulerStrategy,
} from '@nucleus/sdk';
import type { HealthState } from '../../../kernel/health.js';
import type { MemoryPressure } from '../../memory-pressure.js';
import type { ModelFormats } from '../../model-formats.js';
import type { GenerationFaultInjection } from './fault-injecting-runner.js';

/** What the engine needs from the kernel. */
export interface GenerationEngineOptions {
  /** Reads the effective config at a dotted path; `onChange` lets runtime scheduler changes reach running workers. */
  config: ConfigReader;
  events: EventBus;
  logger: Logger;
  /** Where an open circuit breaker marks the server degraded (`/ready`). */
  health?: HealthState;
  /** Under memory pressure workers run fewer sequences at once and prefix caches keep less. */
  memory?: MemoryPressure;
  backends: ExtensionPointView<Backend>;
  /** Cache policies plugins contribute; the prefix cache uses the one `cache.prefix.policy` names. Without it, no prefix cache. */
  cachePolicies?: ExtensionPointView<CachePolicySpec>;
  /** Queue strategies plugins contribute; `scheduler.strategy` names the one that orders requests waiting for a slot. */
  strategies?: ExtensionPointView<SchedulerStrategy>;
  /** Replica routers plugins contribute; `workers.llmRouting` names the one that picks a replica per request. */
  replicaRouters?: ExtensionPointView<ReplicaRouter>;
  /** Graph rewrites plugins contribute; `models[].quantize` names one. */
  transforms?: ExtensionPointView<ModelTransform>;
  /** Speculative decoding methods plugins contribute; `models[].speculative` names one. */
  draftProposers?: ExtensionPointView<DraftProposerSpec>;
  /** The active model formats; configured models load through the one that claims their source. */
  formats: ModelFormats;
  /**
   * Which configured models are LLMs (the rest are tensor models), as the kernel's routing found; without it the
   * engine asks the formats itself at start.
   */
  llmModels?: () => ReadonlySet<string>;
  /** The built-in models plugins contribute; their LLMs and embedding models serve when no model is configured. */
  builtins?: ExtensionPointView<BuiltinModel>;
  /** Serve the built-in LLMs and embedding models when no model is configured. Default true. */
  builtinModels?: boolean;
  /** Where built-in and generated models live; default `$NUCLEUS_CACHE_DIR` or `<repo>/.cache/models`. */
  cacheDir?: string;
  /**
   * Longest gap between two token groups a worker posts. Default 1 ms: a token may wait this long before it leaves
   * the worker, out of the 10 ms it has from being sampled to reaching its client's socket. Steps longer than this
   * (32 streams) post every step; shorter ones (one stream of a tiny model) are grouped, a few steps to a post.
   */
  flushIntervalMs?: number;
  /** Test hook only: decoder runs fail as this says, to exercise recovery on a real model. Never set when serving. */
  faultInjection?: GenerationFaultInjection;
}
