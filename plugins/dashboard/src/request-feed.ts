import type { NucleusEvents } from '@nucleus/sdk';

/** One answered request as the dashboard's recent-requests list shows it. */
export interface RequestSummary {
  requestId: string;
  method: string;
  route: string;
  status: number;
  durationMs: number;
  /** When it was answered, in milliseconds since the epoch. */
  at: number;
  errorCode?: string;
  /** Its prompt text, while an admin has `plugin.dashboard.showPrompts` on. */
  prompt?: string;
}

/**
 * The requests one tenant's keys may see, answered since the previous batch, oldest first (at most the feed's bound:
 * past it the oldest are left out). `requestIds` lets /ws place a batch with no tenant as it places the request events
 * it sums up: admins only.
 */
export interface RequestBatch {
  tenant?: string;
  requestIds: string[];
  requests: RequestSummary[];
}

export interface RequestFeedOptions {
  /** The least time between two batches of one tenant. */
  intervalMs: number;
  /** The most requests one batch carries. */
  max: number;
  emit: (batch: RequestBatch) => void;
}

// Prompts waiting for their request's end; a request that never ends must not keep its prompt forever.
const MAX_PENDING_PROMPTS = 10_000;

/**
 * The dashboard's recent requests, coalesced: every `request.end` is kept (bounded), and at most one batch per tenant
 * leaves every `intervalMs`. Under load an open page gets a few messages a second instead of one per request, and
 * re-renders as often. While no request comes no timer runs.
 */
export class RequestFeed {
  private readonly pending = new Map<string | undefined, RequestSummary[]>();
  private readonly prompts = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RequestFeedOptions) {}

  /** Remembers a request's prompt text until it ends. */
  prompt(requestId: string, text: string): void {
    if (this.prompts.size >= MAX_PENDING_PROMPTS) this.prompts.clear();
    this.prompts.set(requestId, text);
  }

  /** Adds an answered request to the next batch of its tenant. */
  add(end: NucleusEvents['request.end']): void {
    let list = this.pending.get(end.tenant);
    if (!list) this.pending.set(end.tenant, (list = []));
    const summary: RequestSummary = {
      requestId: end.requestId,
      method: end.method,
      route: end.route,
      status: end.status,
      durationMs: end.durationMs,
      at: Date.now(),
    };
    if (end.errorCode !== undefined) summary.errorCode = end.errorCode;
    if (this.prompts.size) {
      const prompt = this.prompts.get(end.requestId);
      if (prompt !== undefined) {
        summary.prompt = prompt;
        this.prompts.delete(end.requestId);
      }
    }
    list.push(summary);
    // Trimmed in steps rather than at every push: a batch only ever shows its last `max`.
    if (list.length >= 2 * this.options.max) list.splice(0, list.length - this.options.max);
    this.timer ??= setTimeout(() => this.flush(), this.options.intervalMs).unref();
  }

  /** Sends what is pending now, one batch per tenant. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batches = [...this.pending];
    this.pending.clear();
    for (const [tenant, list] of batches) {
      const requests = list.length > this.options.max ? list.slice(-this.options.max) : list;
      this.options.emit({
        ...(tenant !== undefined && { tenant }),
        requestIds: requests.map((r) => r.requestId),
        requests,
      });
    }
  }

  /** Stops the timer; what is pending is dropped. */
  dispose(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.pending.clear();
    this.prompts.clear();
  }
}
