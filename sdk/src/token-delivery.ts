/**
 * Now, on the clock generation engines stamp tokens with (`sampledAt`): ms since the epoch with sub-ms precision,
 * comparable between the thread that samples a token and the one that writes it to a socket.
 */
export function tokenClock(): number {
  return performance.timeOrigin + performance.now();
}

/** Delays a {@link TokenDeliveryTimer} collects before it reports them. */
const GROUP = 64;

/**
 * Collects, for one stream, how long each token took from being sampled to being written to its client's socket,
 * and reports the delays in groups (a full group, or what is left at {@link TokenDeliveryTimer.flush}), so the cost
 * per token is one number stored.
 */
export class TokenDeliveryTimer {
  #delays: number[] = [];

  constructor(private readonly report: (delaysMs: number[]) => void) {}

  /** Records one token's delay in ms. */
  record(delayMs: number): void {
    this.#delays.push(delayMs);
    if (this.#delays.length >= GROUP) this.flush();
  }

  /** Reports the delays collected since the last report (at the end of the stream). */
  flush(): void {
    if (this.#delays.length === 0) return;
    const delays = this.#delays;
    this.#delays = [];
    this.report(delays);
  }
}
