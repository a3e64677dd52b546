import type {
  SpeculationAutoOff,
  ChatMessage,
  EmbeddingPooling,
  FinishReason,
  GenerationPriority,
  SamplingOptions,
  SessionOptions,
  ToolDefinition,
  TokenLogprobs,
} from '@nucleus/sdk';
import type { DecoderConfig, TokenizerSpec } from '@nucleus/sdk/llm';
import type { PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import type { PrefixCacheFileIdentity } from '../prefix-cache/prefix-cache-file.js';
import type { GenerationFaultInjection } from './fault-injecting-runner.js';
import type { StepRecovery } from './generation-loop.js';
import type { SpeculationStats } from './speculative-step.js';
import type { SchedulerSettings } from './scheduler.js';

/** The encoder facts an embedding thread needs (for built-in encoders without a tokenizer of their own). */
export interface EncoderSpec {
  hiddenSize: number;
  /** Longest input in tokens, special tokens included. */
  maxPositions: number;
  vocabSize: number;
  /** Pooling when a request names none. */
  pooling: EmbeddingPooling;
}

/** What a generation thread opens: plain data, since it crosses into the thread. */
export interface GenerationThreadSpec {
  /** The model's name, for messages and the thread's name. */
  label: string;
  onnxPath: string;
  /** A decoder runs the generation loop (and embeds with last-token pooling); an encoder only embeds. */
  role: 'decoder' | 'encoder';
  /** For decoders. */
  decoder?: { config: DecoderConfig; tokenizer: TokenizerSpec; chatTemplate?: string };
  /** For encoders; their tokenizer is the byte tokenizer. */
  encoder?: EncoderSpec;
  /** The backend chosen on the main thread and the session options it gave. */
  backend: { name: string; requested: string; options: SessionOptions; fallbackReason?: string };
  /** Where to retry when ORT rejects the backend's provider. */
  fallback?: { name: string; options: SessionOptions };
  scheduler: SchedulerSettings;
  /** Tokens are posted to the main thread in groups at most this far apart. */
  flushIntervalMs: number;
  /** The prefix cache of a decoder; absent when it is off. */
  prefixCache?: PrefixCacheSpec;
  /** Speculative decoding of a decoder (`models[].speculative`); absent when it is off. */
  speculative?: SpeculativeSpec;
  /** Test hook only: runs of a decoder fail as this says (see {@link GenerationFaultInjection}). */
  faultInjection?: GenerationFaultInjection;
}

/** How a decoder thread builds its prefix cache. */
export interface PrefixCacheSpec {
  maxBytes: number;
  blockTokens: number;
  /** The cache policy's name, for messages. */
  policy: string;
  /** The module the thread imports for its own instance of the policy (a main-thread object cannot be called from here). */
  policyModule: string;
  /** The spec's options, handed to the module's factory. */
  policyOptions: Record<string, unknown>;
  /** Where the cache is kept on disk between runs (`cache.prefix.persist`), and what it must have been written for. */
  persist?: { path: string } & PrefixCacheFileIdentity;
}

/** How a decoder thread speculates: the method plugins contributed, as plain data (see `DraftProposerSpec`). */
export interface SpeculativeSpec {
  method: string;
  /** The module the thread imports for its own proposer (its default export is a `DraftProposerFactory`). */
  module: string;
  options: Record<string, unknown>;
  numSpeculativeTokens: number;
  maxBatch: number;
  /** Per-request auto-off; absent: never paused. */
  autoOff?: SpeculationAutoOff;
  /** The draft model the thread opens for the proposer (`models[].speculation.draft`), loaded by a format. */
  draft?: { onnxPath: string; config: DecoderConfig };
}

/** A generation request as it crosses into the thread (the signal stays on the main thread). */
export interface WireGenerateRequest extends Omit<SamplingOptions, 'stop' | 'ignoreEos'> {
  prompt?: string | number[];
  messages?: ChatMessage[];
  addGenerationPrompt: boolean;
  n: number;
  priority: GenerationPriority;
  stop: string[];
  ignoreEos: boolean;
  /** The conversation, qualified by its tenant: `<tenant>:<id>` (see `toWireGenerate`). */
  conversationId?: string;
  /** See `GenerateRequest.cacheNamespace`. */
  cacheNamespace?: string;
  /** See `GenerateRequest.buffered`. */
  buffered?: boolean;
  /** See `GenerateRequest.tools`. */
  tools?: ToolDefinition[];
  /** See `GenerateRequest.jsonSchema`. */
  jsonSchema?: Record<string, unknown>;
  /** See `GenerateRequest.logprobs`. */
  logprobs?: number;
}

/** An embedding request as it crosses into the thread. */
export interface WireEmbedRequest {
  inputs: (string | number[])[];
  pooling?: EmbeddingPooling;
  normalize: boolean;
  dimensions?: number;
}

/**
 * Messages the main thread sends a generation thread. A thread that several small models share (see
 * `SharedSessionThread`) starts with none, opens one per `open` and releases it per `close`; every message about a
 * model names it in `session`.
 */
export type ToGenerationThread = (
  | { type: 'submit'; id: number; request: WireGenerateRequest }
  | { type: 'cancel'; id: number }
  | { type: 'embed'; id: number; request: WireEmbedRequest }
  | { type: 'configure'; scheduler?: Partial<SchedulerSettings>; prefixCacheMaxBytes?: number }
  /** Write the prefix cache to its file (`persist` in its spec); answered with `persisted`. */
  | { type: 'persist'; id: number }
  /** Drop the prefix-cache blocks of a conversation; answered with `released`. */
  | { type: 'release'; id: number; conversationId: string }
  /** Finish the current step, release the sessions and end the thread with `code`. */
  | { type: 'exit'; code: number }
  /** A shared thread: open the model `spec` names, answered by `ready` or `init-error` with the same `session`. */
  | { type: 'open'; session: number; spec: GenerationThreadSpec }
  /** A shared thread: release the model after its current step, answered by `closed`. */
  | { type: 'close'; session?: number }
) & { session?: number };

/** One thing that happened to one choice of one request, as posted in a group. */
export type WireGenerationEvent =
  | {
      kind: 'token';
      id: number;
      index: number;
      tokenId: number;
      text: string;
      /** When it was sampled, on the clock comparable across threads (`performance.timeOrigin + performance.now()`). */
      sampledAt: number;
      logprobs?: TokenLogprobs;
    }
  | {
      kind: 'finish';
      id: number;
      index: number;
      reason: FinishReason;
      text: string;
      completionTokens: number;
      stop?: string /** Prompt tokens this choice took from the prefix cache. */;
      cachedTokens?: number;
    }
  | {
      kind: 'fail';
      id: number;
      status: number;
      code: string;
      message: string /** Shared by the requests one failed step ended, so it counts once. */;
      failure?: string;
    };

/** Telemetry of the steps since the last report. */
export interface WireStepStats {
  phase: 'prefill' | 'decode';
  steps: number;
  /** Summed over steps: divide by `steps` for the mean batch. */
  sequences: number;
  tokens: number;
  durationMs: number;
}

/** Messages a generation thread sends the main thread (a shared thread names the model in `session`). */
export type FromGenerationThread = (
  | {
      type: 'ready';
      backend: string;
      fallbackReason?: string;
      maxContext: number;
      /** Width of the vectors `embed` returns. */
      dimensions?: number;
      /** Why the configured prefix cache could not be set up (the thread runs without one). */
      prefixCacheError?: string;
      /** The prefix cache was restored from its file: its blocks and bytes. */
      prefixCacheRestored?: { blocks: number; bytes: number };
      /** Why the prefix cache's file was not restored (corrupt, or written for another model); the cache starts empty. */
      prefixCacheIgnored?: string;
    }
  | { type: 'init-error'; message: string; code: string }
  | {
      type: 'admitted';
      id: number;
      promptTokens: number;
      maxTokens: number /** Prompt tokens the prefix cache held at admission. */;
      cachedTokens?: number;
    }
  | { type: 'rejected'; id: number; status: number; code: string; message: string; param?: string }
  /** A group of events, with the loop's state and the steps run since the previous group. */
  | {
      type: 'events';
      events: WireGenerationEvent[];
      running: number;
      waiting: number;
      /** The KV cache in use, 0 to 1 (`GenerationLoop.kvUsage`). */
      kvUsage: number;
      steps: WireStepStats[];
      /** The prefix cache, when it changed since the last group. */
      cache?: PrefixCacheStats;
      /** Speculative decoding's totals, when they changed since the last group. */
      speculation?: SpeculationStats;
      /** The loop's step-recovery counters (allocation failures), when they changed since the last group. */
      recovery?: StepRecovery;
    }
  /** `found`: the cache held blocks of the conversation (it may have freed none, when others still use them). */
  | { type: 'released'; id: number; bytes: number; found: boolean }
  /** The prefix cache was written (`blocks`, `bytes` of its file), or not, with `error` saying why. */
  | { type: 'persisted'; id: number; blocks: number; bytes: number; error?: string }
  | { type: 'embedded'; id: number; vectors: Float32Array[]; promptTokens: number }
  | { type: 'embed-error'; id: number; status: number; code: string; message: string; param?: string }
  /** A shared thread released the model a `close` named. */
  | { type: 'closed' }
) & { session?: number };
