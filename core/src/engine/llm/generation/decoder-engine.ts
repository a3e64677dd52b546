import { randomInt, randomUUID } from 'node:crypto';
import type * as ort from 'onnxruntime-node';
import { NucleusError, toNucleusError, type TokenLogprob, type TokenLogprobs } from '@nucleus/sdk';
import type { JsonNode, LlmTokenizer } from '@nucleus/sdk/llm';
import type { PrefixCache, PrefixCacheStats } from '../prefix-cache/prefix-cache.js';
import { isAllocationFailure } from '../../allocation-failure.js';
import { chatRenderer } from './chat-prompt.js';
import { ContribDecoderSession } from './contrib-session.js';
import { DecoderSession } from './decoder-session.js';
import { withFaultInjection } from './fault-injecting-runner.js';
import type { FromGenerationThread, GenerationThreadSpec, WireGenerateRequest } from './generation-messages.js';
import { GenerationLoop, type LoopSink, type StepRecovery } from './generation-loop.js';
import { Outbox } from './outbox.js';
import { type BuiltPrompt, buildPrompt, type ChatRenderer } from './prompt-builder.js';
import { DEFAULT_SAMPLING, type SamplingParams } from './sampler.js';
import type { GenerationScheduler } from './scheduler.js';
import type { Speculation, SpeculationStats } from './speculative-step.js';
import { StructuredOutput } from './structured-output.js';
import type { RawTokenLogprobs } from './token-logprobs.js';

/** Sends a message to the main thread (`transfer`: buffers that move rather than being copied). */
export type PostToMain = (message: FromGenerationThread, transfer?: ArrayBuffer[]) => void;

/** One admitted request: which loop sequences are its choices. */
interface Admitted {
  seqIds: number[];
}

/** The generation side of a decoder thread: requests in, sequences into the loop, token groups out. */
export class DecoderEngine {
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
  /** Requests' JSON schemas, and the constraints their choices sample under. */
  readonly #structured: StructuredOutput;
  #lastStats: string | undefined;
  #lastSpeculation = 0;
  #lastRecovery = '';
  /** Names the current loop iteration in failures, so the requests one failed step ends count as one failure. */
  #iteration = randomUUID();

  constructor(
    spec: GenerationThreadSpec,
    private readonly post: PostToMain,
    session: ort.InferenceSession,
    readonly scheduler: GenerationScheduler,
    tokenizer: LlmTokenizer,
    readonly prefixCache?: PrefixCache,
    speculation?: Speculation,
  ) {
    const d = spec.decoder!;
    this.#tokenizer = tokenizer;
    this.#structured = new StructuredOutput(tokenizer);
    this.#renderChat = chatRenderer(d.chatTemplate, this.#tokenizer);
    this.#maxContext = d.config.maxContext;
    this.#eos = [...new Set([...d.config.eosTokenIds, ...this.#tokenizer.eosTokenIds])];
    this.outbox = new Outbox((events, steps) => {
      const cache = this.#cacheStatsIfChanged();
      const speculation = this.#speculationIfChanged();
      const recovery = this.#recoveryIfChanged();
      this.post({
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
      grammar = this.#structured.compile(request.jsonSchema);
    } catch (err) {
      const e = toNucleusError(err);
      this.post({
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
    const admitted: Admitted = { seqIds: [] };
    this.#requests.set(id, admitted);
    const cachedTokens = this.prefixCache?.peek(prompt.ids, prompt.ids.length - 1, request.cacheNamespace);
    this.post({
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
        ...(grammar && { constraint: this.#structured.constraint(grammar, eos) }),
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
