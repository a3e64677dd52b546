import { unavailable, type Logger, type ReplicaRouter, type WorkerLoad, type WorkerReplicaStatus } from '@nucleus/sdk';
import { ReplicaSet } from '../../workers/replica-set.js';
import type { EventChannel } from './event-channel.js';
import type { Admission, Released } from './generation-requests.js';
import type { GenerationThreadReady, GenerationWorkerClient } from './generation-worker-client.js';
import type { WireEmbedRequest, WireGenerateRequest } from './generation-messages.js';

/** Options of a {@link GenerationReplicas}. */
export interface GenerationReplicasOptions {
  /** Makes the replica with index `id`; it must pass `reroute` on to its {@link GenerationWorkerClient}. */
  create(
    id: number,
    reroute: (from: GenerationWorkerClient) => GenerationWorkerClient | undefined,
  ): GenerationWorkerClient;
  logger?: Logger;
  /** The router that picks the replica of each request (read per request); none means the least busy replica. */
  routing?: () => ReplicaRouter | undefined;
  /** Memory the host or device may still allocate, read per request; undefined when unknown. */
  freeMemoryBytes?: () => number | undefined;
  /** KV-cache bytes one token of one sequence takes, for a request's estimated memory; 0 when unknown. */
  kvBytesPerToken?: number;
  /** The model's context window, in tokens: a request without `maxTokens` may run up to it. */
  maxContext?: number;
}

// Characters of a prompt (or of its first messages) that make its affinity key: roughly its first prefix-cache
// block, which is what two requests must share for one to hit the other's cache.
const AFFINITY_CHARS = 32;
// Tokens of a token-id prompt that make its affinity key (the default `cache.prefix.blockTokens`).
const AFFINITY_TOKENS = 16;

/**
 * The replicas of one LLM, each a {@link GenerationWorkerClient} with its own session, scheduler and prefix cache. A
 * request goes to the replica the routing strategy picks from their loads (sequences in each, estimated KV bytes
 * against free memory, and the request's affinity key); a replica that is not serving is out of the choice until it
 * serves again. A replica that dies hands the requests it held without a token, or buffered ones whose output nobody
 * has seen, to the others ({@link reroute}). Replicas are added and retired while serving ({@link resize}): new
 * ones take requests once open, retired ones take none and end after the generations they hold.
 */
export class GenerationReplicas {
  readonly #replicas: ReplicaSet<GenerationWorkerClient, GenerationThreadReady>;
  readonly #waiters = new Set<() => void>();
  #nextId = 0;
  // Estimated KV bytes of the requests routed and not yet ended, taken off the free-memory figure: the host does not
  // show an allocation until the sequences grow into it.
  #reserved = 0;
  // Requests routed and not yet ended.
  #routed = 0;

  constructor(
    size: number,
    private readonly options: GenerationReplicasOptions,
  ) {
    this.#replicas = new ReplicaSet(
      size,
      {
        create: () => this.options.create(this.#nextId++, (from) => this.#reroute(from)),
        start: (w) => w.start(),
        // Its requests were routed before it was retired: they run to their end (or move on if it dies).
        idle: async (w) => {
          while (w.pending > 0 && !this.#replicas.closed) await new Promise((r) => setTimeout(r, 10));
        },
        close: (w) => w.close(),
      },
      {
        onOpenFailed: (w, err) =>
          this.options.logger?.error(
            { replica: w.id, err: (err as Error).message },
            'a new generation replica could not open',
          ),
        onAdded: () => {
          this.options.logger?.info({ replicas: this.workers.length }, 'generation replicas added');
          this.#wake();
        },
        onRetiring: (retired) =>
          this.options.logger?.info(
            { replicas: this.workers.length, retiring: retired.length },
            'generation replicas retiring after their generations',
          ),
        onClose: () => this.#wake(),
      },
    );
  }

  /** The replicas taking new requests (not those being retired). */
  get workers(): readonly GenerationWorkerClient[] {
    return this.#replicas.active;
  }

  /** Every replica, those being retired included. */
  get all(): GenerationWorkerClient[] {
    return this.#replicas.all;
  }

  /** Opens every replica; rejects (after closing the rest) when any cannot open. */
  start(): Promise<GenerationThreadReady> {
    return this.#replicas.start();
  }

  /**
   * Grows or shrinks the pool to `size` replicas. New replicas take requests once their session is open; a retired
   * one takes no new requests and ends after the generations it holds have finished, so none is dropped.
   */
  resize(size: number): Promise<void> {
    return this.#replicas.resize(size);
  }

  /** Routes a request to a replica and submits it there; see {@link GenerationWorkerClient.generate}. */
  async generate(
    request: WireGenerateRequest,
    signal?: AbortSignal,
  ): Promise<{ admission: Admission; events: EventChannel }> {
    const estimatedBytes = this.#estimate(request);
    const key = affinityKey(request);
    const worker = this.#choose(estimatedBytes, key) ?? (await this.#pick(estimatedBytes, key));
    // Submitted in the tick it was chosen in: the replica counts its sequences at once (see GenerationWorkerClient.generate).
    const submitted = worker.generate(request, signal);
    this.#routed++;
    this.#reserved += estimatedBytes;
    let given = false;
    const giveBack = () => {
      if (given) return;
      given = true;
      this.#routed--;
      this.#reserved -= estimatedBytes;
      this.#wake();
    };
    try {
      const admitted = await submitted;
      if (admitted.events.ended) giveBack();
      else admitted.events.onEnd(giveBack);
      return admitted;
    } catch (err) {
      giveBack();
      throw err;
    }
  }

  /** Embeds on the least busy replica that serves. */
  embed(request: WireEmbedRequest, signal?: AbortSignal): Promise<{ vectors: Float32Array[]; promptTokens: number }> {
    return this.#leastBusy().embed(request, signal);
  }

  /** Drops a conversation's prefix-cache blocks in every replica; resolves to the bytes freed and whether any had some. */
  async releaseConversation(conversationId: string): Promise<Released> {
    const freed = await Promise.all(this.all.map((w) => w.releaseConversation(conversationId)));
    return { bytes: freed.reduce((a, b) => a + b.bytes, 0), found: freed.some((r) => r.found) };
  }

  /** Each replica (retiring ones included, marked), as `/status` shows it. */
  replicas(): WorkerReplicaStatus[] {
    return [
      ...this.workers.map((w) => w.status()),
      ...[...this.#replicas.retiring].map((w) => ({ ...w.status(), retiring: true })),
    ];
  }

  /** The load of each replica taking requests, as a routing strategy sees it. */
  loads(): WorkerLoad[] {
    const free = this.options.freeMemoryBytes?.();
    return this.workers.map((w) => ({
      id: String(w.id),
      healthy: w.serving,
      activeBatches: w.sequences,
      inflight: w.pending,
      ...(free !== undefined && { freeMemoryBytes: Math.max(0, free - this.#reserved) }),
    }));
  }

  /** Sequences running in every replica, as they last reported. */
  get running(): number {
    return this.all.reduce((n, w) => n + w.running, 0);
  }

  /** Sequences waiting in every replica, as they last reported. */
  get waiting(): number {
    return this.all.reduce((n, w) => n + w.waiting, 0);
  }

  /** Whether some replica serves now. */
  get serving(): boolean {
    return this.workers.some((w) => w.serving);
  }

  /** Closes every replica; requests still running fail with 503 `model_unloading`. */
  close(): Promise<void> {
    return this.#replicas.close();
  }

  // The replica a request goes to, chosen and submitted to in one tick so that requests routed together see each
  // other's load. When the strategy answers -1 (none has room) the request waits for one to end; with nothing routed
  // the figures will not change, and refusing for ever would hang it, so it takes the least busy.
  async #pick(estimatedBytes: number, key: string | undefined): Promise<GenerationWorkerClient> {
    for (;;) {
      const chosen = this.#choose(estimatedBytes, key);
      if (chosen) return chosen;
      await new Promise<void>((resolve) => this.#waiters.add(resolve));
    }
  }

  #choose(estimatedBytes: number, key: string | undefined): GenerationWorkerClient | undefined {
    if (this.#replicas.closed) throw unavailable('model_unloading', 'the model is stopping');
    const strategy = this.options.routing?.();
    if (!strategy) return this.#leastBusy();
    const index = strategy.pickWorker(this.loads(), { estimatedBytes, ...(key !== undefined && { affinityKey: key }) });
    const chosen = index >= 0 ? this.workers[index] : undefined;
    if (chosen) return chosen;
    // No replica serves (all restarting): the least busy one runs the request once it serves again.
    if (!this.serving) return this.#leastBusy();
    if (this.#routed === 0) {
      this.options.logger?.warn(
        { estimatedBytes, strategy: strategy.name },
        'no replica reports room for the generation and none is busy; running it on the least busy one',
      );
      return this.#leastBusy();
    }
    return undefined;
  }

  // The least busy replica that serves (other than `except`); one that does not only when none serves.
  #leastBusy(except?: GenerationWorkerClient): GenerationWorkerClient {
    const others = this.workers.filter((w) => w !== except);
    const serving = others.filter((w) => w.serving);
    const candidates = serving.length > 0 ? serving : others;
    let best = candidates[0] ?? this.workers[0]!;
    for (const w of candidates) if (w.sequences < best.sequences) best = w;
    return best;
  }

  // Where a dying replica's requests without a token go: the least busy other replica that serves now.
  #reroute(from: GenerationWorkerClient): GenerationWorkerClient | undefined {
    if (this.#replicas.closed) return undefined;
    const other = this.#leastBusy(from);
    return other !== from && other.serving ? other : undefined;
  }

  // A KV estimate: the prompt (about four characters a token) and the tokens it may generate, for each choice.
  #estimate(request: WireGenerateRequest): number {
    const perToken = this.options.kvBytesPerToken ?? 0;
    if (perToken === 0) return 0;
    const maxContext = this.options.maxContext ?? 0;
    const chars =
      typeof request.prompt === 'string'
        ? request.prompt.length
        : (request.messages ?? []).reduce((n, m) => n + m.content.length, 0);
    const prompt = Array.isArray(request.prompt) ? request.prompt.length : Math.ceil(chars / 4);
    const tokens = prompt + (request.maxTokens ?? maxContext);
    return perToken * (maxContext > 0 ? Math.min(maxContext, tokens) : tokens) * request.n;
  }

  #wake(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** Wakes requests waiting for room once a replica serves again (after a restart). */
  healthChanged(): void {
    this.#wake();
  }
}

/**
 * What a request shares with others it should run beside: its conversation, or else how its prompt begins (the
 * first characters of its text or of its messages, the first token ids) — roughly the first prefix-cache block.
 */
export function affinityKey(request: WireGenerateRequest): string | undefined {
  if (request.conversationId !== undefined) return `conversation:${request.conversationId}`;
  if (Array.isArray(request.prompt))
    return request.prompt.length === 0 ? undefined : `tokens:${request.prompt.slice(0, AFFINITY_TOKENS).join(',')}`;
  const text =
    typeof request.prompt === 'string'
      ? request.prompt
      : (request.messages ?? []).map((m) => `${m.role}\u0000${m.content}`).join('\u0001');
  return text.length === 0 ? undefined : `text:${text.slice(0, AFFINITY_CHARS)}`;
}
