// One model served in a generation thread: its ORT session, and either the generation loop of a decoder (which also
// embeds, with last-token pooling) or the embedder of an encoder. A thread creates one per model it serves, hands it
// the main thread's messages for that model, and gives it turns: embeddings, then one iteration of its loop.
import type * as ort from 'onnxruntime-node';
import { toNucleusError, type CachePolicy, type CachePolicyFactory, type DraftProposerFactory } from '@nucleus/sdk';
import { loadTokenizer } from '@nucleus/sdk/llm';
import { createWorkerSession } from '../../backend-session.js';
import { type OpenedPrefixCache, openPrefixCache, persistPrefixCache } from '../prefix-cache/persisted-prefix-cache.js';
import type { PrefixCache } from '../prefix-cache/prefix-cache.js';
import { DecoderEngine, type PostToMain } from './decoder-engine.js';
import { kvLayoutOf } from './decoder-session.js';
import { DraftModelRunner } from './draft-model-runner.js';
import { Embedder } from './embedding/embedder.js';
import type {
  GenerationThreadSpec,
  PrefixCacheSpec,
  SpeculativeSpec,
  ToGenerationThread,
  WireEmbedRequest,
} from './generation-messages.js';
import { GenerationScheduler } from './scheduler.js';
import type { Speculation } from './speculative-step.js';

/** The messages about a model (the others, `open`, `close` and `exit`, are its thread's). */
export type ModelMessage = Exclude<ToGenerationThread, { type: 'exit' | 'open' | 'close' }>;

/** A session, and the backend it runs on. */
interface OpenedSession {
  session: ort.InferenceSession;
  backend: string;
  fallbackReason?: string;
}

/** What a model's turn did: idle when it has nothing to do, with the ms until a waiting sequence may start. */
export interface ModelTurn {
  idle: boolean;
  wakeInMs?: number;
}

/** A model a generation thread serves (see the file comment). */
export class GenerationThreadModel {
  #session: ort.InferenceSession | undefined;
  /** The draft model's session, released with the model's own. */
  #draftSession: ort.InferenceSession | undefined;
  #engine: DecoderEngine | undefined;
  #embedder: Embedder | undefined;
  readonly #scheduler: GenerationScheduler;
  readonly #embeds: { id: number; request: WireEmbedRequest }[] = [];

  constructor(
    readonly spec: GenerationThreadSpec,
    private readonly post: PostToMain,
  ) {
    this.#scheduler = new GenerationScheduler(spec.scheduler);
  }

  /** Opens the model's session and what runs on it; posts `ready`, or `init-error` (false) when it cannot serve. */
  async open(): Promise<boolean> {
    const spec = this.spec;
    let opened: OpenedSession;
    try {
      opened = await this.#openSession(spec.onnxPath);
    } catch (err) {
      const e = toNucleusError(err);
      this.post({
        type: 'init-error',
        message: e.message,
        code: e.code === 'internal_error' ? 'session_create_failed' : e.code,
      });
      return false;
    }
    this.#session = opened.session;
    let prefixCache: PrefixCache | undefined;
    let prefixCacheError: string | undefined;
    let restore: OpenedPrefixCache | undefined;
    if (spec.role === 'decoder' && spec.prefixCache) {
      try {
        restore = await this.#openCache(spec.prefixCache);
        prefixCache = restore.cache;
      } catch (err) {
        prefixCacheError = err instanceof Error ? err.message : String(err);
      }
    }
    try {
      if (spec.role === 'decoder') {
        const speculation = spec.speculative && (await this.#openSpeculation(spec.speculative));
        // A format's own tokenizer module is imported here, inside the worker, like cache policies and proposers.
        const tokenizer = await loadTokenizer(spec.decoder!.tokenizer);
        this.#engine = new DecoderEngine(
          spec,
          this.post,
          opened.session,
          this.#scheduler,
          tokenizer,
          prefixCache,
          speculation,
        );
        this.#embedder = Embedder.forDecoder(spec, tokenizer, (model) =>
          this.#openSession(model).then((o) => o.session),
        );
      } else {
        this.#embedder = Embedder.forEncoder(spec, opened.session);
      }
    } catch (err) {
      // In a thread shared with other models, what did open must not stay behind.
      await this.release();
      this.post({
        type: 'init-error',
        message: err instanceof Error ? err.message : String(err),
        code: 'model_unsupported',
      });
      return false;
    }
    this.post({
      type: 'ready',
      backend: opened.backend,
      ...(opened.fallbackReason !== undefined && { fallbackReason: opened.fallbackReason }),
      maxContext: this.#engine?.maxContext ?? spec.encoder!.maxPositions,
      ...(this.#embedder.dimensions !== undefined && { dimensions: this.#embedder.dimensions }),
      ...(prefixCacheError !== undefined && { prefixCacheError }),
      ...(restore?.restored && { prefixCacheRestored: restore.restored }),
      ...(restore?.ignored !== undefined && { prefixCacheIgnored: restore.ignored }),
    });
    return true;
  }

  /** A message from the main thread for this model. */
  receive(message: ModelMessage): void {
    const engine = this.#engine;
    switch (message.type) {
      case 'submit':
        if (engine) engine.submit(message.id, message.request);
        else
          this.post({
            type: 'rejected',
            id: message.id,
            status: 400,
            code: 'model_cannot_generate',
            message: `${this.spec.label} is an embedding model; it cannot generate text`,
          });
        break;
      case 'cancel':
        engine?.cancel(message.id);
        break;
      case 'embed':
        this.#embeds.push({ id: message.id, request: message.request });
        break;
      case 'configure':
        if (message.scheduler) this.#scheduler.update(message.scheduler);
        if (message.prefixCacheMaxBytes !== undefined && engine?.prefixCache) {
          engine.prefixCache.resize(message.prefixCacheMaxBytes);
          engine.outbox.flush(true);
        }
        break;
      case 'persist':
        void this.#persist(message.id, engine?.prefixCache);
        break;
      case 'release': {
        const { bytes, found } = engine?.releaseConversation(message.conversationId) ?? { bytes: 0, found: false };
        // The stats changed with nothing else to post: say so now, before the answer.
        engine?.outbox.flush(true);
        this.post({ type: 'released', id: message.id, bytes, found });
        break;
      }
    }
  }

  /** The model's turn: the embeddings asked for, then one iteration of generation. */
  async turn(): Promise<ModelTurn> {
    while (this.#embeds.length > 0) await this.#embed(this.#embeds.shift()!);
    const engine = this.#engine;
    if (!engine) return { idle: true };
    const result = await engine.iterate();
    for (const step of result.steps) engine.outbox.record(step);
    if (result.idle) {
      engine.outbox.flush();
      // Embeddings asked for during the iteration are work to do now.
      if (this.#embeds.length > 0) return { idle: false };
      return { idle: true, ...(result.wakeInMs !== undefined && { wakeInMs: result.wakeInMs }) };
    }
    engine.outbox.flushIfDue();
    return { idle: false };
  }

  /** Posts what is left to post and releases the sessions (ending a thread while ORT holds one can abort the process). */
  async release(): Promise<void> {
    this.#engine?.outbox.flush();
    await this.#embedder?.release();
    await this.#session?.release();
    await this.#draftSession?.release();
  }

  async #embed(job: { id: number; request: WireEmbedRequest }): Promise<void> {
    try {
      const { vectors, promptTokens } = await this.#embedder!.embed(job.request);
      this.post(
        { type: 'embedded', id: job.id, vectors, promptTokens },
        vectors.map((v) => v.buffer as ArrayBuffer),
      );
    } catch (err) {
      const e = toNucleusError(err);
      this.post({
        type: 'embed-error',
        id: job.id,
        status: e.status,
        code: e.code,
        message: e.message,
        ...(e.param !== undefined && { param: e.param }),
      });
    }
  }

  /** A session on the model's backend (its fallback when ORT rejects the backend's provider). */
  async #openSession(model: string | Uint8Array): Promise<OpenedSession> {
    const created = await createWorkerSession(model, this.spec);
    return {
      session: created.session,
      backend: created.backend.name,
      ...(created.fallbackReason !== undefined && { fallbackReason: created.fallbackReason }),
    };
  }

  /**
   * The prefix cache lives here, beside the KV it holds, and decides evictions synchronously inside a step; the cache
   * policy plugins contribute lives on the main thread and cannot be called from here. So the main thread sends the
   * module the chosen policy's spec names (`CachePolicySpec.module`) and this thread imports it for an instance of its
   * own: the same code, one instance per cache, no message per eviction.
   */
  async #openCache(cacheSpec: PrefixCacheSpec): Promise<OpenedPrefixCache> {
    const imported = (await import(cacheSpec.policyModule)) as { default?: unknown };
    if (typeof imported.default !== 'function')
      throw new Error(`${cacheSpec.policyModule} has no default export that creates a cache policy`);
    const makePolicy = (): CachePolicy => {
      const policy = (imported.default as CachePolicyFactory)(cacheSpec.policyOptions) as
        | Partial<CachePolicy>
        | undefined;
      for (const method of ['onInsert', 'onAccess', 'onRemove', 'victim'] as const) {
        if (typeof policy?.[method] !== 'function')
          throw new Error(`the '${cacheSpec.policy}' cache policy from ${cacheSpec.policyModule} has no ${method}()`);
      }
      return policy as CachePolicy;
    };
    // A cache written at the last shutdown is restored when it was written for this very model, graph and block size.
    return openPrefixCache({
      layout: kvLayoutOf(this.spec.decoder!.config),
      blockTokens: cacheSpec.blockTokens,
      maxBytes: cacheSpec.maxBytes,
      policy: makePolicy,
      ...(cacheSpec.persist && { persistence: cacheSpec.persist }),
    });
  }

  // Writes the prefix cache to its file for the `persist` message; the answer says what was written, or why not.
  async #persist(id: number, cache: PrefixCache | undefined): Promise<void> {
    const persistence = this.spec.prefixCache?.persist;
    if (!cache || !persistence) {
      this.post({ type: 'persisted', id, blocks: 0, bytes: 0, error: 'this worker keeps no prefix cache on disk' });
      return;
    }
    try {
      this.post({ type: 'persisted', id, ...(await persistPrefixCache(cache, persistence)) });
    } catch (err) {
      this.post({ type: 'persisted', id, blocks: 0, bytes: 0, error: (err as Error).message });
    }
  }

  /**
   * Speculative decoding's proposer, from the module the method names, like the cache policy above; a method that
   * runs a draft model gets it opened here, on the model's backend, with the same runners as the model.
   */
  async #openSpeculation(s: SpeculativeSpec): Promise<Speculation> {
    const imported = (await import(s.module)) as { default?: unknown };
    if (typeof imported.default !== 'function')
      throw new Error(`${s.module} has no default export that creates a draft proposer`);
    if (s.draft) this.#draftSession = (await this.#openSession(s.draft.onnxPath)).session;
    const draftModel =
      s.draft && this.#draftSession ? new DraftModelRunner(this.#draftSession, s.draft.config) : undefined;
    const proposer = (imported.default as DraftProposerFactory)(s.options, draftModel ? { draftModel } : {});
    if (typeof proposer?.propose !== 'function')
      throw new Error(`the '${s.method}' speculative method from ${s.module} gave no propose()`);
    return {
      method: s.method,
      proposer,
      numSpeculativeTokens: s.numSpeculativeTokens,
      maxBatch: s.maxBatch,
      ...(s.autoOff && { autoOff: s.autoOff }),
    };
  }
}
