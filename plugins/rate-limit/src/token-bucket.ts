const MINUTE_MS = 60_000;

/**
 * A budget of `capacity` per minute, refilled evenly and full at the start. A cost known only afterwards (the tokens
 * of a generation) is charged in full, so the level may go below zero: the debt is paid off by the refill before the
 * next request is let through. The capacity is passed at each use, so a limit changed at run time applies at once,
 * the debt kept.
 */
export class TokenBucket {
  private level: number;
  private at: number;

  constructor(capacity: number, now: number) {
    this.level = capacity;
    this.at = now;
  }

  /** The level at `now`. */
  levelAt(capacity: number, now: number): number {
    const refill = (Math.max(0, now - this.at) * capacity) / MINUTE_MS;
    this.level = Math.min(capacity, this.level + refill);
    this.at = now;
    return this.level;
  }

  /** Takes `amount`, whatever the level (the caller has decided). */
  take(amount: number, capacity: number, now: number): void {
    this.level = this.levelAt(capacity, now) - amount;
  }

  /** Milliseconds from the last look until the level reaches `level`. */
  msUntil(level: number, capacity: number): number {
    return Math.max(0, ((level - this.level) * MINUTE_MS) / capacity);
  }
}
