// The body of a generation worker, run as a thread or as a child process (see workers/worker-port.ts). It owns the
// ORT session, so `session.run` blocks this worker and never the server's event loop, and it runs the whole engine
// loop here: admit, schedule, step, sample, stop checks, emit. The main thread only submits requests and relays the
// token groups this worker posts.
import { randomInt, randomUUID } from 'node:crypto';
import * as ort from 'onnxruntime-node';
import {
  NucleusError,
  toNucleusError,
  type Backend,
  type CachePolicy,
  type CachePolicyFactory,
  type DraftProposerFactory,
  type SessionOptions,
  type TokenLogprob,
  type TokenLogprobs,
} from '@nucleus/sdk';
import { createBackendSession } from '../../backend-session.js';
import { compileJsonSchema, loadTokenizer, type JsonNode, type LlmTokenizer } from '@nucleus/sdk/llm';
import { type OpenedPrefixCache, openPrefixCache, persistPrefixCache } from '../prefix-cache/persisted-prefix-cache.js';
import type { PrefixCache, PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import { isAllocationFailure } from '../../allocation-failure.js';
import { chatRenderer } from './chat-prompt.js';
import { ContribDecoderSession } from './contrib-session.js';
import { DecoderSession, kvLayoutOf } from './decoder-session.js';
import { DraftModelRunner } from './draft-model-runner.js';
import { Embedder } from './embedding/embedder.js';
import { releaseAllocationFailureSession, withFaultInjection } from './fault-injecting-runner.js';
import type {
  FromGenerationThread,
  GenerationThreadSpec,
  PrefixCacheSpec,
  SpeculativeSpec,
  ToGenerationThread,
  WireEmbedRequest,
  WireGenerateRequest,
} from './generation-messages.js';
import {
  GenerationLoop,
  type LoopSink,
  type Speculation,
  type SpeculationStats,
  type StepRecovery,
} from './generation-loop.js';
import { Outbox } from './outbox.js';
import type { RawTokenLogprobs } from './token-logprobs.js';
import { type BuiltPrompt, buildPrompt, type ChatRenderer } from './prompt-builder.js';
import { DEFAULT_SAMPLING, type SamplingParams } from './sampler.js';
import { GenerationScheduler } from './scheduler.js';
import { TokenConstraint, TokenVocabulary } from './token-constraint.js';
import { workerPort } from '../../workers/worker-port.js';

ort.env.logLevel = 'fatal';

const port = workerPort();
const spec = port.data as GenerationThreadSpec;

function post(message: FromGenerationThread, transfer: ArrayBuffer[] = []): void {
  port.post(message, transfer);
}

// The backends live in plugins on the main thread; here they are only their session options.
function optionsBackend(name: string, options: SessionOptions): Backend {
  return {
    name,
    rank: 0,
    probe: async () => ({ usable: true, devices: [], executionProviders: [] }),
    sessionOptions: () => options,
  };
}

async function openSession(
  model: string | Uint8Array,
): Promise<{ session: ort.InferenceSession; backend: string; fallbackReason?: string }> {
  const created = await createBackendSession(
    model,
    {
      backend: optionsBackend(spec.backend.name, spec.backend.options),
      probe: { usable: true, devices: [], executionProviders: [] },
      requested: spec.backend.requested,
      ...(spec.backend.fallbackReason !== undefined && { fallbackReason: spec.backend.fallbackReason }),
    },
    spec.fallback ? { fallback: optionsBackend(spec.fallback.name, spec.fallback.options) } : {},
  );
  return {
    session: created.session,
    backend: created.backend.name,
    ...(created.fallbackReason !== undefined && { fallbackReason: created.fallbackReason }),
  };
}

/**
 * The prefix cache lives here, beside the KV it holds, and decides evictions synchronously inside a step; the cache
 * policy plugins contribute lives on the main thread and cannot be called from here. So the main thread sends the
 * module the chosen policy's spec names (`CachePolicySpec.module`) and this thread imports it for an instance of its own: the
 * same code, one instance per cache, no message per eviction.
 */
async function openCache(cacheSpec: PrefixCacheSpec): Promise<OpenedPrefixCache> {
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
    layout: kvLayoutOf(spec.decoder!.config),
    blockTokens: cacheSpec.blockTokens,
    maxBytes: cacheSpec.maxBytes,
    policy: makePolicy,
    ...(cacheSpec.persist && { persistence: cacheSpec.persist }),
  });
}

// Writes the prefix cache to its file for the `persist` message; the answer says what was written, or why not.
async function persist(id: number, cache: PrefixCache | undefined): Promise<void> {
  const persistence = spec.prefixCache?.persist;
  if (!cache || !persistence) {
    post({ type: 'persisted', id, blocks: 0, bytes: 0, error: 'this worker keeps no prefix cache on disk' });
    return;
  }
  try {
    post({ type: 'persisted', id, ...(await persistPrefixCache(cache, persistence)) });
  } catch (err) {
    post({ type: 'persisted', id, blocks: 0, bytes: 0, error: (err as Error).message });
  }
}

/** The draft model's session, released with the model's own. */
let draftSession: ort.InferenceSession | undefined;

/**
 * Speculative decoding's proposer, from the module the method names, like the cache policy above; a method that runs a
 * draft model gets it opened here, on the model's backend, with the same runners as the model.
 */
async function openSpeculation(s: SpeculativeSpec): Promise<Speculation> {
  const imported = (await import(s.module)) as { default?: unknown };
  if (typeof imported.default !== 'function')
    throw new Error(`${s.module} has no default export that creates a draft proposer`);
  if (s.draft) draftSession = (await openSession(s.draft.onnxPath)).session;
  const draftModel = s.draft && draftSession ? new DraftModelRunner(draftSession, s.draft.config) : undefined;
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

/** One admitted request: which loop sequences are its choices. */
interface Admitted {
  seqIds: number[];
}

/** The generation side of a decoder thread: requests in, sequences into the loop, token groups out. */
class DecoderEngine {
  readonly loop: GenerationLoop;
  readonly outbox: Outbox;
  readonly #tokenizer: LlmTokenizer;
  readonly #renderChat: ChatRenderer;
  readonly #maxContext: number;
  readonly #eos: number[];
  readonly #requests = new Map<number, Admitted>();
  /** Loop sequence id → request id and choice index. */
  readonly #choices = new Map<number, { request: number; index: number }>();
  /** Token texts for log-probs, filled as requests ask for them (a vocabulary's worth at most). */
  readonly #tokenTexts = new Map<number, { token: string; bytes: number[] }>();
  /** Loop sequences that have emitted a token: the first one of each is posted at once. */
  readonly #streaming = new Set<number>();
  /** Loop sequence id → prompt tokens it took from the prefix cache. */
  readonly #cached = new Map<number, number>();
  #nextSeq = 1;
  /** The vocabulary as text, for constrained output: built on the first request that needs it. */
  #vocabulary: TokenVocabulary | undefined;
  #lastStats: string | undefined;
  #lastSpeculation = 0;
  #lastRecovery = '';
  /** Names the current loop iteration in failures, so the requests one failed step ends count as one failure. */
  #iteration = randomUUID();

  constructor(
    session: ort.InferenceSession,
    readonly scheduler: GenerationScheduler,
    tokenizer: LlmTokenizer,
    readonly prefixCache?: PrefixCache,
    speculation?: Speculation,
  ) {
    const d = spec.decoder!;
    this.#tokenizer = tokenizer;
    this.#renderChat = chatRenderer(d.chatTemplate, this.#tokenizer);
    this.#maxContext = d.config.maxContext;
    this.#eos = [...new Set([...d.config.eosTokenIds, ...this.#tokenizer.eosTokenIds])];
    this.outbox = new Outbox((events, steps) => {
      const cache = this.#cacheStatsIfChanged();
      const speculation = this.#speculationIfChanged();
      const recovery = this.#recoveryIfChanged();
      post({
        type: 'events',
        events,
        running: this.loop.running,
        waiting: this.loop.waiting,
        kvUsage: this.loop.kvUsage,
        steps,
        ...(cache && { cache }),
        ...(speculation && { speculation }),
        ...(recovery && { recovery }),
      });
    }, spec.flushIntervalMs);
    const sink: LoopSink = {
      token: (seq, tokenId, text, logprobs) => {
        const c = this.#choices.get(seq)!;
        const first = !this.#streaming.has(seq);
        if (first) this.#streaming.add(seq);
        this.outbox.push(
          {
            kind: 'token',
            id: c.request,
            index: c.index,
            tokenId,
            text,
            sampledAt: performance.timeOrigin + performance.now(),
            ...(logprobs !== undefined && { logprobs: this.#namedLogprobs(tokenId, logprobs) }),
          },
          first,
        );
      },
      finish: (seq, reason, text, completionTokens, stop) => {
        this.#streaming.delete(seq);
        const cachedTokens = this.#cached.get(seq);
        this.#cached.delete(seq);
        const c = this.#release(seq);
        if (c) {
          this.outbox.push({
            kind: 'finish',
            id: c.request,
            index: c.index,
            reason,
            text,
            completionTokens,
            ...(stop !== undefined && { stop }),
            ...(cachedTokens !== undefined && { cachedTokens }),
          });
        }
      },
      prefilled: (seq, cachedTokens) => {
        if (this.prefixCache) this.#cached.set(seq, cachedTokens);
      },
      // First tokens are urgent: they leave before the decode step (a step of 1–5 ms at 32 streams) instead of after.
      prefillDone: () => this.outbox.flushIfDue(),
      fail: (seqs, err) => {
        const e = toNucleusError(err);
        const failed = new Set<number>();
        for (const seq of seqs) {
          const c = this.#choices.get(seq);
          if (c) failed.add(c.request);
        }
        // Out of memory even alone, with the prefix cache emptied: the server is short of memory now, the model is fine.
        const error = isAllocationFailure(err)
          ? new NucleusError(
              503,
              'insufficient_memory',
              `the model ran out of memory for this request, even in a step of its own with the prefix cache emptied; retry later or with a shorter prompt: ${e.message}`,
            )
          : new NucleusError(500, 'generation_failed', `the model failed to run: ${e.message}`);
        for (const request of failed) this.#failRequest(request, error, this.#iteration);
      },
    };
    // A contrib graph runs over KV buffers its runner keeps, sized for the scheduler's batch (they grow if it rises).
    const real =
      d.config.graphStyle === 'contrib'
        ? new ContribDecoderSession(session, d.config, { initialRows: scheduler.capacity })
        : new DecoderSession(session, d.config);
    const runner = spec.faultInjection
      ? withFaultInjection(real, spec.faultInjection, () => prefixCache?.stats.bytes ?? 0)
      : real;
    this.loop = new GenerationLoop({
      runner,
      scheduler,
      sink,
      maxContext: this.#maxContext,
      ...(prefixCache && { prefixCache }),
      ...(speculation && { speculation }),
    });
  }

  get maxContext(): number {
    return this.#maxContext;
  }

  /** One iteration of the loop. */
  iterate(): ReturnType<GenerationLoop['iterate']> {
    this.#iteration = randomUUID();
    return this.loop.iterate();
  }

  submit(id: number, request: WireGenerateRequest): void {
    let prompt: BuiltPrompt;
    let grammar: JsonNode | undefined;
    try {
      prompt = buildPrompt(request, this.#tokenizer, this.#renderChat, this.#maxContext);
      if (request.jsonSchema !== undefined) grammar = compileJsonSchema(request.jsonSchema);
    } catch (err) {
      const e = toNucleusError(err);
      post({
        type: 'rejected',
        id,
        status: e.status,
        code: e.code,
        message: e.message,
        ...(e.param !== undefined && { param: e.param }),
      });
      return;
    }
    const params: SamplingParams = {
      temperature: request.temperature ?? DEFAULT_SAMPLING.temperature,
      topP: request.topP ?? DEFAULT_SAMPLING.topP,
      topK: request.topK ?? DEFAULT_SAMPLING.topK,
      repetitionPenalty: request.repetitionPenalty ?? DEFAULT_SAMPLING.repetitionPenalty,
      frequencyPenalty: request.frequencyPenalty ?? DEFAULT_SAMPLING.frequencyPenalty,
      presencePenalty: request.presencePenalty ?? DEFAULT_SAMPLING.presencePenalty,
    };
    // The sequence ends when the value is complete; end-of-sequence tokens are allowed only then.
    const eos = new Set(request.ignoreEos ? [] : this.#eos);
    if (grammar) this.#vocabulary ??= new TokenVocabulary(this.#tokenizer);
    const admitted: Admitted = { seqIds: [] };
    this.#requests.set(id, admitted);
    const cachedTokens = this.prefixCache?.peek(prompt.ids, prompt.ids.length - 1, request.cacheNamespace);
    post({
      type: 'admitted',
      id,
      promptTokens: prompt.ids.length,
      maxTokens: prompt.maxTokens,
      ...(cachedTokens !== undefined && { cachedTokens }),
    });
    for (let index = 0; index < request.n; index++) {
      const seq = this.#nextSeq++;
      admitted.seqIds.push(seq);
      this.#choices.set(seq, { request: id, index });
      this.loop.add({
        id: seq,
        promptIds: prompt.ids,
        params,
        // Choices of one seeded request differ from each other, and each is reproducible.
        seed: request.seed !== undefined ? (request.seed + index) >>> 0 : randomInt(0, 2 ** 32 - 1),
        maxTokens: prompt.maxTokens,
        stop: request.stop,
        eosTokenIds: this.#eos,
        ignoreEos: request.ignoreEos,
        priority: request.priority,
        // Decoding continues the prompt, so text at the seam (a leading space, a split character) comes out right.
        decoder: this.#tokenizer.createStreamDecoder({ prefix: prompt.ids }),
        ...(request.conversationId !== undefined && { conversationId: request.conversationId }),
        ...(request.cacheNamespace !== undefined && { cacheNamespace: request.cacheNamespace }),
        ...(grammar && { constraint: new TokenConstraint(this.#vocabulary!, grammar, eos) }),
        ...(request.logprobs !== undefined && { logprobs: request.logprobs }),
      });
    }
  }

  cancel(id: number): void {
    const admitted = this.#requests.get(id);
    if (!admitted) return;
    for (const seq of admitted.seqIds) this.loop.cancel(seq);
  }

  /** Drops a conversation's prefix-cache blocks: the bytes freed, and whether the cache had any of its blocks. */
  releaseConversation(conversationId: string): { bytes: number; found: boolean } {
    const cache = this.prefixCache;
    if (!cache?.hasConversation(conversationId)) return { bytes: 0, found: false };
    return { bytes: cache.releaseConversation(conversationId), found: true };
  }

  // The cache's stats when they differ from the last ones posted.
  #cacheStatsIfChanged(): PrefixCacheStats | undefined {
    if (!this.prefixCache) return undefined;
    const stats = this.prefixCache.stats;
    const key = JSON.stringify(stats);
    if (key === this.#lastStats) return undefined;
    this.#lastStats = key;
    return stats;
  }

  // Speculation's totals when drafts were verified since the last ones posted.
  #speculationIfChanged(): SpeculationStats | undefined {
    const stats = this.loop.speculation;
    // Steps without drafts (auto-off's cool-down) change the speed-up too.
    const key = stats ? stats.drafts + stats.plainTokens : 0;
    if (!stats || key === this.#lastSpeculation) return undefined;
    this.#lastSpeculation = key;
    return { ...stats };
  }

  // The loop's step-recovery counters when they changed since the last ones posted.
  #recoveryIfChanged(): StepRecovery | undefined {
    const recovery = this.loop.recovery;
    const key = `${recovery.cacheFlushes},${recovery.splits},${recovery.failedAlone}`;
    if (key === this.#lastRecovery || (this.#lastRecovery === '' && key === '0,0,0')) return undefined;
    this.#lastRecovery = key;
    return { ...recovery };
  }

  // Log-probs with each token's text, as the APIs show them.
  #namedLogprobs(tokenId: number, raw: RawTokenLogprobs): TokenLogprobs {
    const named = (id: number, logprob: number): TokenLogprob => {
      let text = this.#tokenTexts.get(id);
      if (text === undefined) {
        const t = this.#tokenizer;
        const bytes = t.pieceBytes?.(id, true) ?? Buffer.from(t.decode([id], { keepSpecial: true }));
        text = { token: Buffer.from(bytes).toString('utf8'), bytes: [...bytes] };
        this.#tokenTexts.set(id, text);
      }
      return { tokenId: id, ...text, logprob };
    };
    return { ...named(tokenId, raw.logprob), top: raw.top.map(([id, lp]) => named(id, lp)) };
  }

  #release(seq: number): { request: number; index: number } | undefined {
    const c = this.#choices.get(seq);
    if (!c) return undefined;
    this.#choices.delete(seq);
    const admitted = this.#requests.get(c.request);
    if (admitted && !admitted.seqIds.some((s) => this.#choices.has(s))) this.#requests.delete(c.request);
    return c;
  }

  #failRequest(request: number, err: NucleusError, failure?: string): void {
    const admitted = this.#requests.get(request);
    if (!admitted) return;
    // Its other choices may still be running or waiting: take them out quietly.
    for (const seq of admitted.seqIds) {
      this.#streaming.delete(seq);
      this.#cached.delete(seq);
      if (!this.#choices.has(seq)) continue;
      this.#choices.delete(seq);
      this.loop.cancel(seq);
    }
    this.#requests.delete(request);
    this.outbox.push({
      kind: 'fail',
      id: request,
      status: err.status,
      code: err.code,
      message: err.message,
      ...(failure !== undefined && { failure }),
    });
  }
}

let wake: (() => void) | undefined;
// A message that came while the loop was busy must not be slept through.
let woken = false;
function wakeUp(): void {
  const w = wake;
  wake = undefined;
  if (w) w();
  else woken = true;
}

function sleep(ms: number | undefined): Promise<void> {
  if (woken) {
    woken = false;
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = ms === undefined ? undefined : setTimeout(() => wakeUp(), Math.max(0, ms));
    wake = () => {
      if (timer) clearTimeout(timer);
      woken = false;
      resolve();
    };
  });
}

const yieldToEvents = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function main(): Promise<void> {
  let opened: Awaited<ReturnType<typeof openSession>>;
  try {
    opened = await openSession(spec.onnxPath);
  } catch (err) {
    const e = toNucleusError(err);
    post({
      type: 'init-error',
      message: e.message,
      code: e.code === 'internal_error' ? 'session_create_failed' : e.code,
    });
    return;
  }
  const scheduler = new GenerationScheduler(spec.scheduler);
  let engine: DecoderEngine | undefined;
  let embedder: Embedder;
  let prefixCache: PrefixCache | undefined;
  let prefixCacheError: string | undefined;
  let restore: OpenedPrefixCache | undefined;
  if (spec.role === 'decoder' && spec.prefixCache) {
    try {
      restore = await openCache(spec.prefixCache);
      prefixCache = restore.cache;
    } catch (err) {
      prefixCacheError = err instanceof Error ? err.message : String(err);
    }
  }
  try {
    if (spec.role === 'decoder') {
      const speculation = spec.speculative && (await openSpeculation(spec.speculative));
      // A format's own tokenizer module is imported here, inside the worker, like cache policies and proposers.
      const tokenizer = await loadTokenizer(spec.decoder!.tokenizer);
      engine = new DecoderEngine(opened.session, scheduler, tokenizer, prefixCache, speculation);
      embedder = Embedder.forDecoder(spec, tokenizer, (model) => openSession(model).then((o) => o.session));
    } else {
      embedder = Embedder.forEncoder(spec, opened.session);
    }
  } catch (err) {
    post({ type: 'init-error', message: err instanceof Error ? err.message : String(err), code: 'model_unsupported' });
    return;
  }
  post({
    type: 'ready',
    backend: opened.backend,
    ...(opened.fallbackReason !== undefined && { fallbackReason: opened.fallbackReason }),
    maxContext: engine?.maxContext ?? spec.encoder!.maxPositions,
    ...(embedder.dimensions !== undefined && { dimensions: embedder.dimensions }),
    ...(prefixCacheError !== undefined && { prefixCacheError }),
    ...(restore?.restored && { prefixCacheRestored: restore.restored }),
    ...(restore?.ignored !== undefined && { prefixCacheIgnored: restore.ignored }),
  });

  const embeds: { id: number; request: WireEmbedRequest }[] = [];
  let exitCode: number | undefined;
  port.on((message: ToGenerationThread) => {
    switch (message.type) {
      case 'submit':
        if (engine) engine.submit(message.id, message.request);
        else
          post({
            type: 'rejected',
            id: message.id,
            status: 400,
            code: 'model_cannot_generate',
            message: `${spec.label} is an embedding model; it cannot generate text`,
          });
        break;
      case 'cancel':
        engine?.cancel(message.id);
        break;
      case 'embed':
        embeds.push({ id: message.id, request: message.request });
        break;
      case 'configure':
        if (message.scheduler) scheduler.update(message.scheduler);
        if (message.prefixCacheMaxBytes !== undefined && engine?.prefixCache) {
          engine.prefixCache.resize(message.prefixCacheMaxBytes);
          engine.outbox.flush(true);
        }
        break;
      case 'persist':
        void persist(message.id, engine?.prefixCache);
        break;
      case 'release': {
        const { bytes, found } = engine?.releaseConversation(message.conversationId) ?? { bytes: 0, found: false };
        // The stats changed with nothing else to post: say so now, before the answer.
        engine?.outbox.flush(true);
        post({ type: 'released', id: message.id, bytes, found });
        break;
      }
      case 'exit':
        exitCode = message.code;
        break;
    }
    wakeUp();
  });

  // The loop: embeddings between steps, then one iteration of generation; sleep only when there is nothing to do.
  for (;;) {
    if (exitCode !== undefined) {
      // Ending a thread while ORT holds a session (let alone runs it) can abort the whole process: release first.
      engine?.outbox.flush();
      await embedder.release();
      await releaseAllocationFailureSession();
      await opened.session.release();
      await draftSession?.release();
      process.exit(exitCode);
    }
    while (embeds.length > 0) {
      const job = embeds.shift()!;
      try {
        const { vectors, promptTokens } = await embedder.embed(job.request);
        post(
          { type: 'embedded', id: job.id, vectors, promptTokens },
          vectors.map((v) => v.buffer as ArrayBuffer),
        );
      } catch (err) {
        const e = toNucleusError(err);
        post({
          type: 'embed-error',
          id: job.id,
          status: e.status,
          code: e.code,
          message: e.message,
          ...(e.param !== undefined && { param: e.param }),
        });
      }
    }
    if (!engine) {
      await sleep(undefined);
      continue;
    }
    const result = await engine.iterate();
    for (const step of result.steps) engine.outbox.record(step);
    if (result.idle) {
      engine.outbox.flush();
      if (embeds.length === 0) await sleep(result.wakeInMs);
    } else {
      engine.outbox.flushIfDue();
      await yieldToEvents();
    }
  }
}

void main();
