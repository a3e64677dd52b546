/** What the stop matcher lets out after one piece of text. */
export interface StopCheck {
  /** Text that is safe to send: it cannot be part of a stop sequence. */
  text: string;
  /** The stop sequence found; the output ends before it and `text` holds everything up to it. */
  stop?: string;
}

/**
 * Finds stop sequences in generated text across token boundaries. Text that could be the beginning of a stop
 * sequence is held back until the next piece shows whether it is one, so a stop sequence is never emitted,
 * not even in part.
 */
export class StopMatcher {
  readonly #stops: readonly string[];
  #held = '';
  #stopped = false;

  constructor(stops: readonly string[]) {
    this.#stops = stops.filter((s) => s.length > 0);
  }

  /** Text held back for now. */
  get held(): string {
    return this.#held;
  }

  /** Feeds the next piece of output text. After a stop is found, further pieces yield nothing. */
  push(piece: string): StopCheck {
    if (this.#stopped) return { text: '' };
    if (this.#stops.length === 0) return { text: piece };
    const buffer = this.#held + piece;
    let at = -1;
    let found: string | undefined;
    for (const stop of this.#stops) {
      const i = buffer.indexOf(stop);
      // The earliest match wins; at the same place the longer stop string is the one that was meant.
      if (i >= 0 && (at < 0 || i < at || (i === at && stop.length > found!.length))) {
        at = i;
        found = stop;
      }
    }
    if (found !== undefined) {
      this.#stopped = true;
      this.#held = '';
      return { text: buffer.slice(0, at), stop: found };
    }
    const keep = this.#partialSuffix(buffer);
    this.#held = buffer.slice(buffer.length - keep);
    return { text: buffer.slice(0, buffer.length - keep) };
  }

  /** Releases the held-back text at the end of the output (no stop sequence can complete any more). */
  flush(): string {
    const held = this.#held;
    this.#held = '';
    return this.#stopped ? '' : held;
  }

  // Length of the longest suffix of `buffer` that is a proper prefix of some stop sequence.
  #partialSuffix(buffer: string): number {
    let best = 0;
    for (const stop of this.#stops) {
      const max = Math.min(stop.length - 1, buffer.length);
      for (let len = max; len > best; len--) {
        if (buffer.endsWith(stop.slice(0, len))) {
          best = len;
          break;
        }
      }
    }
    return best;
  }
}
