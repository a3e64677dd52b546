import type { WorkerReplicaStatus } from './inference.js';

/** Who is admitted first when sequences wait for a slot in a generation engine. */
export type GenerationPriority = 'high' | 'normal' | 'low';

/**
 * Why one choice of a generation ended: `stop` the model's end-of-sequence token, `length` the token limit or
 * the context window, `stop_sequence` one of the request's stop strings, `cancelled` the caller went away.
 */
export type FinishReason = 'stop' | 'length' | 'stop_sequence' | 'cancelled';

/** One chat turn; `content` is plain text (API surfaces flatten multi-part content before calling the engine). */
export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
  /** An assistant turn's tool calls, rendered by the chat template. */
  toolCalls?: ToolCall[];
  /** A `tool` turn: the call whose result `content` is. */
  toolCallId?: string;
}

/** A function the model may call, as OpenAI's `tools` list and Hugging Face chat templates spell it. */
export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

/** A tool call the model made: `arguments` is JSON text. */
export interface ToolCall {
  id: string;
  name: string;
  arguments: string;
}

/** How tokens are picked; every field is optional and has the engine's default. */
export interface SamplingOptions {
  /** 0 picks the most likely token (greedy); default 1. */
  temperature?: number;
  /** Nucleus sampling: the smallest set of tokens whose probability adds up to `topP`; default 1 (off). */
  topP?: number;
  /** Only the `topK` most likely tokens; 0 or absent is off. */
  topK?: number;
  /** Same seed, same request, same model → same output. */
  seed?: number;
  /** Divides positive (multiplies negative) logits of tokens already in prompt or output; 1 is off. */
  repetitionPenalty?: number;
  /** OpenAI's penalty per occurrence of a token in the output so far; 0 is off. */
  frequencyPenalty?: number;
  /** OpenAI's penalty for a token that occurs in the output at all; 0 is off. */
  presencePenalty?: number;
  /** Most tokens to generate per choice; default: what is left of the context window. */
  maxTokens?: number;
  /** Strings that end a choice when the output contains them; they are never part of the output. */
  stop?: string[];
  /** Keep going past the end-of-sequence token (benchmarks). */
  ignoreEos?: boolean;
}

/** One generation call: a plain prompt (text or token ids) or chat messages, plus sampling options. */
export interface GenerateRequest extends SamplingOptions {
  model: string;
  /** One of the versions served under `model`; default: its default version (the highest). */
  version?: string;
  /** Text, or token ids fed as they are. Exactly one of `prompt` and `messages`. */
  prompt?: string | number[];
  /** Chat turns, rendered with the model's chat template. */
  messages?: ChatMessage[];
  /** Functions the chat template renders into the prompt (a template that cannot render them refuses the request). */
  tools?: ToolDefinition[];
  /**
   * The output must be JSON valid against this schema: the engine masks every token that could not continue such a
   * value (constrained decoding) and ends the choice when the value is complete.
   */
  jsonSchema?: Record<string, unknown>;
  /** Whether the rendered chat ends with the assistant's turn opened; default true. */
  addGenerationPrompt?: boolean;
  /** Independent choices generated for the prompt; default 1. */
  n?: number;
  /** Default `normal`. */
  priority?: GenerationPriority;
  /** The server's request id, carried into telemetry. */
  requestId?: string;
  /** Milliseconds the request may wait for a running slot before it fails with 408 (when shorter than `queue.timeoutMs`). */
  deadlineMs?: number;
  /**
   * The conversation this turn belongs to: the prefix-cache entries it creates or reuses are tagged with it, and
   * {@link GenerationService.releaseConversation} drops those no other conversation uses.
   */
  conversationId?: string;
  /** The API key's tenant (`Tenancy`): `conversationId` is this tenant's, apart from other keys' same ids. */
  tenant?: string;
  /** The prefix-cache namespace (`Tenancy`): the prompt reuses and leaves cached KV only within it. */
  cacheNamespace?: string;
  /**
   * Log-probs of every generated token, with this many most likely alternatives (0–20): log-softmax of the model's
   * raw logits (before penalties and temperature). Absent: none are computed.
   */
  logprobs?: number;
  /**
   * The caller gathers the whole answer before anyone sees any of it (a non-streamed response): its events are held
   * until it ends, and when the worker running it dies it is run again from the start (a bounded number of times)
   * instead of failing, since no part of it has been seen. Default false: events come as they are made.
   */
  buffered?: boolean;
}

/** One token and its log-probability (natural log). */
export interface TokenLogprob {
  tokenId: number;
  /** The token's own text (special tokens as written); a piece of a UTF-8 character reads as U+FFFD. */
  token: string;
  /** The token's own bytes (a byte token's single byte, where `token` cannot show it). */
  bytes: number[];
  logprob: number;
}

/** A generated token's log-probability and the most likely tokens at its step, best first. */
export interface TokenLogprobs extends TokenLogprob {
  top: TokenLogprob[];
}

/** Something a generation stream yields, in order: tokens and finishes per choice, then one `done`. */
export type GenerationEvent =
  | {
      type: 'token';
      /** The choice this token belongs to. */
      index: number;
      tokenId: number;
      /**
       * Output text this token released: may be empty (an incomplete UTF-8 character, or text held back because
       * it could be the start of a stop sequence) or hold text of earlier tokens released now.
       */
      text: string;
      /**
       * When the engine sampled it, in ms since the epoch on a clock comparable across threads
       * (`performance.timeOrigin + performance.now()`, as `tokenClock()` reads it), where the engine stamps tokens.
       */
      sampledAt?: number;
      /** Where the request asked for `logprobs`. */
      logprobs?: TokenLogprobs;
    }
  | {
      type: 'finish';
      index: number;
      finishReason: FinishReason;
      /** Text released at the finish (what was held back and turned out not to be a stop sequence). */
      text: string;
      /** The stop string that ended the choice, for `stop_sequence`. */
      stopSequence?: string;
      /** Tokens this choice generated. */
      completionTokens: number;
    }
  | { type: 'done'; usage: GenerationUsage };

/** Token counts of one request; `completionTokens` adds up every choice. */
export interface GenerationUsage {
  promptTokens: number;
  completionTokens: number;
  totalTokens: number;
  /** Prompt tokens whose KV came from the prefix cache instead of being computed (first choice), where the engine has one. */
  cachedPromptTokens?: number;
}

/**
 * An admitted generation: iterate it for its events. Leaving the iteration early (break, return, throw) cancels
 * the generation and frees its slot; a failure in the engine is thrown from the iteration as a NucleusError.
 */
export interface GenerationStream extends AsyncIterable<GenerationEvent> {
  /** Unique id of this generation. */
  readonly id: string;
  /** The model that serves it. */
  readonly model: string;
  /** The version of `model` that serves it, where the engine has versions. */
  readonly version?: string;
  /** Tokens of the (rendered) prompt. */
  readonly promptTokens: number;
  /** The completion limit per choice that applies (the request's, or what the context window leaves). */
  readonly maxTokens: number;
  /** Unix time in seconds when it was admitted. */
  readonly created: number;
}

/** What a generation-capable model is and can do. */
export interface GenerationModelInfo {
  name: string;
  /** `llm` generates text (and embeds with last-token pooling); `embedding` only embeds. */
  kind: 'llm' | 'embedding';
  /** Where the model came from: a built-in generator, a path in config, or a load at run time (`ModelRegistry`). */
  origin: 'builtin' | 'config' | 'runtime';
  /** Its version: the label it was loaded with, or 1 when first loaded and one more at each swap. */
  version?: string;
  /** The file or folder it was loaded from (absent for built-ins). */
  path?: string;
  /** `loading` until its worker is up; `idle` for a built-in that starts on first use. */
  state: 'idle' | 'loading' | 'ready' | 'failed';
  /** Why it failed. */
  reason?: string;
  /** The error code of that failure (`unsupported_model`, `model_source_not_found` …), for a program to act on. */
  errorCode?: string;
  /**
   * While it failed to load: failed attempts in a row, the last one's reason, and when a request may start the next
   * (`breaker.loadBackoffMs`); requests before then get 503 `model_unavailable` with Retry-After.
   */
  loadRetry?: { failures: number; reason: string; retryAt: string; retryAfterMs: number };
  /** Longest prompt plus completion, in tokens. */
  maxContext: number;
  /** Width of the vectors `embed` returns. */
  dimensions?: number;
  /** Whether it has a chat template of its own (otherwise a plain fallback format is used). */
  chatTemplate: boolean;
  /**
   * How an LLM's graph runs attention, once it is open: `contrib` (ORT GroupQueryAttention over KV buffers written in
   * place) or `generic` (past and present KV tensors every step).
   */
  graphStyle?: 'generic' | 'contrib';
  /** The backend its sessions run on, once it is open. */
  backend?: string;
  /** The backend config asked for (`backend`, `models[].backend`): `auto` or a name. */
  requestedBackend?: string;
  /** Why it runs on another backend than the one asked for; /ready is degraded meanwhile. */
  fallbackReason?: string;
  /** Unix time in seconds when the server learned of it. */
  created: number;
  /** Sequences running and waiting in its engine now. */
  running: number;
  waiting: number;
  /** The circuit breaker of an LLM: `open` while its generations fail fast with 503 `circuit_open`. */
  breaker?: {
    state: 'closed' | 'open' | 'half-open';
    consecutiveFailures: number;
    retryAfterMs?: number;
    reason?: string;
  };
  /** How an LLM's steps got through allocation failures since it started, over all its replicas. */
  stepRecovery?: StepRecoveryTotals;
  /** Its first worker once started: thread or process, state, restarts, and for a process its pid and measured memory. */
  worker?: WorkerReplicaStatus;
  /** An LLM's replicas (`workers.perModel`, `models[].workers`), each with its own session and prefix cache. */
  workers?: WorkerReplicaStatus[];
}

/** Counters of an LLM engine's recovery from steps that could not allocate memory (cumulative). */
export interface StepRecoveryTotals {
  /** Times the prefix cache was emptied so that a step could be tried again. */
  cacheFlushes: number;
  /** Times a failed step was split into smaller batches. */
  splits: number;
  /** Sequences that failed even in a step of their own (503 `insufficient_memory`). */
  failedAlone: number;
}

/** How token vectors become one vector: mean over tokens, the first token (CLS), or the last token. */
export type EmbeddingPooling = 'mean' | 'cls' | 'last';

/** One embedding call: each input (text or token ids) becomes one vector. */
export interface EmbedRequest {
  model: string;
  /** One of the versions served under `model`; default: its default version. */
  version?: string;
  input: string | string[] | number[] | number[][];
  /** Default: `mean` for encoders, `last` for decoders. */
  pooling?: EmbeddingPooling;
  /** Scale each vector to length 1; default true. */
  normalize?: boolean;
  /** Keep only the first `dimensions` values (then normalise). */
  dimensions?: number;
  requestId?: string;
}

/** The vectors of an {@link EmbedRequest}, in input order. */
export interface EmbedResult {
  model: string;
  embeddings: Float32Array[];
  /** Tokens across all inputs. */
  promptTokens: number;
}

/**
 * The text-generation engine as plugins see it (registered under `Services.generation`). Errors are
 * NucleusErrors thrown before anything streams: 404 for an unknown model, 400 for a request the model cannot
 * take (a prompt that does not fit the context window says the limit), 503 when the engine cannot run it.
 */
export interface GenerationService {
  /** Every model the engine serves: each name once, as its default version (the highest) shows it. */
  list(): GenerationModelInfo[];
  /**
   * Every version of every model, where a name may hold several side by side (A/B, canary, shadow); an engine
   * without versions leaves it out and `list()` says it all.
   */
  listVersions?(): GenerationModelInfo[];
  /** One model (its default version, or `version`); 404 when unknown. */
  get(name: string, version?: string): GenerationModelInfo;
  /** Validates and admits a generation; the stream then yields its tokens. `signal` aborting cancels it. */
  generate(request: GenerateRequest, signal?: AbortSignal): Promise<GenerationStream>;
  /**
   * Validates and admits several generations of one model as one unit (a multi-prompt completion): they take one
   * running slot each, all at once, and wait in the queue as one entry; either all are admitted or none is. 400 when
   * there are more than can ever run at once.
   */
  generateBatch?(requests: readonly GenerateRequest[], signal?: AbortSignal): Promise<GenerationStream[]>;
  /** Embeds the inputs as one batch. */
  embed(request: EmbedRequest, signal?: AbortSignal): Promise<EmbedResult>;
  /**
   * Ends a conversation for caching: drops the prefix-cache entries tagged with `conversationId` (of `tenant`) that
   * no other conversation (or untagged request) uses, in `model` or in every model. Resolves to the bytes freed, or
   * undefined when no cached entry belongs to that conversation.
   */
  releaseConversation?(conversationId: string, model?: string, tenant?: string): Promise<number | undefined>;
}
