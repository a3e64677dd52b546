/**
 * How many request-body bytes the event loop takes in per turn before readers wait for the next one. Under load from
 * many clients with large bodies (64 ResNet images of 588 KiB at once), one turn could otherwise read and start a
 * dozen requests in a row, and a `/health` that came in meanwhile would wait behind all of them.
 */
export const READ_BYTES_PER_TURN = 1024 * 1024;

/** What one read of a socket hands over at most (libuv's buffer). */
const SOCKET_READ_BYTES = 64 * 1024;

/**
 * A per-turn allowance of body bytes shared by the bodies being read on this thread. A reader that finds this turn's
 * allowance spent pauses its stream and is resumed on a later turn, in the order readers paused; with the stream
 * paused, the socket fills and TCP holds the client back (backpressure), so no reader is refused or starved: each
 * gets its turn, and other work (other sockets, timers) runs between them.
 */
export class ReadBudget {
  #used = 0;
  #armed = false;
  readonly #waiting: Array<() => void> = [];

  constructor(readonly bytesPerTurn = READ_BYTES_PER_TURN) {}

  /** Counts `bytes` just read; false once this turn's allowance is spent (the reader should {@link wait}). */
  take(bytes: number): boolean {
    this.#arm();
    this.#used += bytes;
    return this.#used < this.bytesPerTurn;
  }

  /** Calls `resume` on a later turn of the event loop, after the readers that waited before it. */
  wait(resume: () => void): void {
    this.#waiting.push(resume);
    this.#arm();
  }

  // The allowance starts again after the poll phase of this turn (an immediate runs then). Readers waiting are
  // resumed then, as many as the new allowance serves at a socket read's 64 KiB each, the rest on the turns after.
  #arm(): void {
    if (this.#armed) return;
    this.#armed = true;
    setImmediate(() => {
      this.#armed = false;
      this.#used = 0;
      const resumed = this.#waiting.splice(0, Math.max(1, Math.ceil(this.bytesPerTurn / SOCKET_READ_BYTES)));
      if (this.#waiting.length > 0) this.#arm();
      for (const resume of resumed) resume();
    });
  }
}

/** The budget of the bodies read on this thread's event loop. */
export const threadReadBudget = new ReadBudget();
