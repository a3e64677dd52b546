import { float16FromBits } from '@nucleus/sdk/onnx';
import { SeededRandom } from '@nucleus/sdk';
import type { TokenConstraint } from './token-constraint.js';

/** Sampling settings with every default filled in. */
export interface SamplingParams {
  /** 0 is greedy. */
  temperature: number;
  /** 1 is off. */
  topP: number;
  /** 0 is off. */
  topK: number;
  /** 1 is off. */
  repetitionPenalty: number;
  /** 0 is off. */
  frequencyPenalty: number;
  /** 0 is off. */
  presencePenalty: number;
}

/** The defaults OpenAI-style APIs use: plain sampling at temperature 1, every filter off. */
export const DEFAULT_SAMPLING: SamplingParams = {
  temperature: 1,
  topP: 1,
  topK: 0,
  repetitionPenalty: 1,
  frequencyPenalty: 0,
  presencePenalty: 0,
};

/** A float32 view of one row of logits, or float16 bits to be widened. */
export type LogitsRow = Float32Array | { float16: Uint16Array };

/** True when the settings can only ever pick the most likely token. */
export function isGreedy(params: SamplingParams): boolean {
  return params.temperature === 0 || params.topK === 1;
}

/**
 * Picks the next token of one sequence from its logits: penalties, then temperature, top-k and top-p, then a
 * draw from the sequence's own seeded generator, so one seed always gives one output whatever else is batched
 * beside it. It remembers which tokens the prompt and the output hold, for the penalties.
 */
export class Sampler {
  readonly #params: SamplingParams;
  readonly #rng: SeededRandom;
  /** Occurrences in the output (frequency and presence penalties). */
  readonly #outputCounts = new Map<number, number>();
  /** Tokens seen anywhere, prompt included (repetition penalty). */
  readonly #seen = new Set<number>();
  #scratch = new Float32Array(0);
  #buckets = new Uint8Array(0);
  /** The constrained output (JSON schema) the tokens must continue, if any. */
  readonly #constraint: TokenConstraint | undefined;
  #unmasked = new Float32Array(0);

  constructor(params: SamplingParams, seed: number, promptIds: readonly number[] = [], constraint?: TokenConstraint) {
    this.#params = params;
    this.#rng = new SeededRandom(seed);
    this.#constraint = constraint;
    if (params.repetitionPenalty !== 1) for (const id of promptIds) this.#seen.add(id);
  }

  /** Whether a constraint decides which tokens may come (such a sequence does not speculate). */
  get constrained(): boolean {
    return this.#constraint !== undefined;
  }

  /** The constrained output is complete and nothing may follow it. */
  get constraintFinished(): boolean {
    return this.#constraint?.finished ?? false;
  }

  /** Records a generated token for the penalties (the loop calls this for every token it appends). */
  accept(tokenId: number): void {
    this.#outputCounts.set(tokenId, (this.#outputCounts.get(tokenId) ?? 0) + 1);
    if (this.#params.repetitionPenalty !== 1) this.#seen.add(tokenId);
    this.#constraint?.accept(tokenId);
  }

  /** The next token id for these logits (one vocabulary row). */
  sample(row: LogitsRow): number {
    const logits = this.#prepare(row);
    if (this.#constraint) return this.#sampleConstrained(logits, this.#constraint);
    return this.#pick(logits);
  }

  #pick(logits: Float32Array): number {
    if (isGreedy(this.#params)) return argmax(logits);
    return this.#draw(logits);
  }

  /**
   * The mask, applied before sampling and lazily, as llama.cpp's grammar sampler does: the token drawn without it is
   * kept when the constraint allows it (a rejection sampler, so the draw is still from the masked distribution; top-k
   * and top-p then cut the unmasked one), and only otherwise is every token the constraint refuses masked and the
   * draw made again. Most tokens inside a string pass at once; masking walks the vocabulary only at the few places
   * where the schema allows little.
   */
  #sampleConstrained(logits: Float32Array, constraint: TokenConstraint): number {
    if (this.#unmasked.length !== logits.length) this.#unmasked = new Float32Array(logits.length);
    this.#unmasked.set(logits);
    const first = this.#pick(logits);
    if (constraint.allows(first)) return first;
    logits.set(this.#unmasked);
    if (constraint.mask(logits) === 0)
      throw new Error('no token of the vocabulary can continue the constrained output');
    return this.#pick(logits);
  }

  /**
   * Verifies a draft token against these logits (speculative decoding) and gives the token to append: the draft when
   * accepted, else a token drawn in its place — standard rejection sampling (Leviathan et al., Chen et al.). With p
   * the distribution the settings give and q the one the draft was drawn from, the draft is accepted with probability
   * min(1, p(draft) / q(draft)); on a rejection a token is drawn from the residual max(0, p − q), normalised. The
   * token appended is then distributed exactly as {@link sample} would draw it. Without `q` the draft is a guess with
   * no probabilities of its own (one token for sure, q one-hot): accepted with probability p(draft), else drawn from p
   * with the draft taken out. Greedy settings accept the draft only when it is the most likely token.
   */
  verify(row: LogitsRow, draft: number, q?: Float32Array): number {
    const logits = this.#prepare(row);
    if (isGreedy(this.#params)) return argmax(logits);
    const { candidates, total } = this.#weigh(logits);
    const inSet = draft >= 0 && draft < logits.length && (candidates === undefined || candidates.includes(draft));
    const mass = candidates === undefined ? total : candidates.reduce((m, id) => m + logits[id]!, 0);
    const pDraft = inSet ? logits[draft]! : 0;
    if (q !== undefined && q.length === logits.length) return this.#verifyAgainst(logits, candidates, mass, draft, q);
    if (this.#rng.next() * mass < pDraft) return draft;
    if (pDraft >= mass) return draft;
    // Rejected: the residual max(p − q, 0) of a one-token guess is p without the draft.
    if (inSet) logits[draft] = 0;
    const rest = mass - pDraft;
    if (candidates === undefined) return drawFrom(logits, rest, this.#rng.next());
    return pick(logits, candidates, rest, this.#rng.next());
  }

  // Rejection sampling against a draft distribution q: `weights` are p unnormalised (`mass` in all, over `candidates`).
  #verifyAgainst(
    weights: Float32Array,
    candidates: readonly number[] | undefined,
    mass: number,
    draft: number,
    q: Float32Array,
  ): number {
    const inv = 1 / mass;
    const inSet = draft >= 0 && draft < weights.length && (candidates === undefined || candidates.includes(draft));
    const pDraft = inSet ? weights[draft]! * inv : 0;
    const qDraft = draft >= 0 && draft < q.length ? q[draft]! : 0;
    // q(draft) = 0 cannot happen for a draft drawn from q; such a draft is then treated as a certain guess.
    if (this.#rng.next() * (qDraft > 0 ? qDraft : 1) < pDraft) return draft;
    // Rejected: draw from max(0, p − q), in place of the weights.
    let rest = 0;
    const ids = candidates;
    if (ids === undefined) {
      for (let i = 0; i < weights.length; i++) {
        const r = Math.max(0, weights[i]! * inv - (qDraft > 0 ? q[i]! : i === draft ? 1 : 0));
        weights[i] = r;
        rest += r;
      }
    } else {
      for (const i of ids) {
        const r = Math.max(0, weights[i]! * inv - (qDraft > 0 ? q[i]! : i === draft ? 1 : 0));
        weights[i] = r;
        rest += r;
      }
    }
    // p = q (to rounding): nothing is left over, and any draw from p is right.
    if (!(rest > 1e-12)) {
      if (qDraft > 0) return draft;
      rest = 0;
    }
    if (ids === undefined) return drawFrom(weights, rest, this.#rng.next());
    return pick(weights, ids, rest, this.#rng.next());
  }

  /** A uniform draw in [0, 1) from the sequence's generator (a proposer's draws, so seeded requests stay reproducible). */
  random(): number {
    return this.#rng.next();
  }

  // Copies the row into scratch space and applies the penalties there.
  #prepare(row: LogitsRow): Float32Array {
    const n = row instanceof Float32Array ? row.length : row.float16.length;
    if (this.#scratch.length !== n) this.#scratch = new Float32Array(n);
    const out = this.#scratch;
    if (row instanceof Float32Array) out.set(row);
    else for (let i = 0; i < n; i++) out[i] = float16FromBits(row.float16[i]!);
    const p = this.#params;
    if (p.repetitionPenalty !== 1) {
      for (const id of this.#seen) {
        if (id < 0 || id >= n) continue;
        const v = out[id]!;
        out[id] = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty;
      }
    }
    if (p.frequencyPenalty !== 0 || p.presencePenalty !== 0) {
      for (const [id, count] of this.#outputCounts) {
        if (id < 0 || id >= n) continue;
        out[id] = out[id]! - count * p.frequencyPenalty - p.presencePenalty;
      }
    }
    return out;
  }

  #draw(logits: Float32Array): number {
    const { candidates, total } = this.#weigh(logits);
    if (candidates === undefined) return drawFrom(logits, total, this.#rng.next());
    let mass = 0;
    for (const id of candidates) mass += logits[id]!;
    return pick(logits, candidates, mass, this.#rng.next());
  }

  // Turns the logits into unnormalised probabilities in place, and gives the ids top-k and top-p keep (undefined: all).
  #weigh(logits: Float32Array): { candidates: number[] | undefined; total: number } {
    const p = this.#params;
    const n = logits.length;
    // Softmax at temperature T, in place: logits become unnormalised probabilities.
    let max = -Infinity;
    for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!;
    const invT = 1 / p.temperature;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const d = (logits[i]! - max) * invT;
      // Below e^-30 a token weighs less than float32 rounding of the total: skip the exp.
      const e = d < -30 ? 0 : Math.exp(d);
      logits[i] = e;
      total += e;
    }
    return { candidates: this.#candidates(logits, total), total };
  }

  /**
   * The ids top-k and top-p keep (in no meaningful order); undefined when both are off. Sorting the whole vocabulary
   * for every token is too slow for large vocabularies, so tokens are first bucketed by the binary exponent of
   * their probability relative to the most likely one (a factor of two per bucket); only the buckets down to the
   * one where `topK` tokens or a mass of `topP` is reached are sorted.
   */
  #candidates(probs: Float32Array, total: number): number[] | undefined {
    const p = this.#params;
    const n = probs.length;
    const k = p.topK > 0 ? Math.min(p.topK, n) : n;
    const useTopP = p.topP < 1;
    if (k >= n && !useTopP) return undefined;
    // A hair below the target, so a set that reaches top_p exactly is not lost to rounding.
    const wantMass = (useTopP ? p.topP : 1) * total * (1 - 1e-6);
    // probs are exp((l - max) / T), all in (0, 1]: the float exponent says how many halvings below the top.
    const bits = new Int32Array(probs.buffer, probs.byteOffset, n);
    if (this.#buckets.length < n) this.#buckets = new Uint8Array(n);
    const buckets = this.#buckets;
    const count = new Float64Array(BUCKETS);
    const mass = new Float64Array(BUCKETS);
    for (let i = 0; i < n; i++) {
      const b = Math.min(BUCKETS - 1, 127 - ((bits[i]! >>> 23) & 0xff));
      buckets[i] = b;
      count[b]!++;
      mass[b]! += probs[i]!;
    }
    let last = BUCKETS - 1;
    let c = 0;
    let m = 0;
    for (let b = 0; b < BUCKETS; b++) {
      c += count[b]!;
      m += mass[b]!;
      if (c >= k || m >= wantMass) {
        last = b;
        break;
      }
    }
    // Buckets above the boundary are kept whole (everything in them beats the boundary bucket); only the boundary
    // bucket is sorted, to find exactly where top-k or top-p cuts it.
    const kept: number[] = [];
    const boundary: number[] = [];
    let keptMass = 0;
    for (let i = 0; i < n; i++) {
      if (probs[i] === 0) continue;
      const b = buckets[i]!;
      if (b < last) {
        kept.push(i);
        keptMass += probs[i]!;
      } else if (b === last) boundary.push(i);
    }
    boundary.sort((a, b) => probs[b]! - probs[a]! || a - b);
    let take = Math.min(boundary.length, k - kept.length);
    if (useTopP) {
      let sum = keptMass;
      for (let i = 0; i < take; i++) {
        sum += probs[boundary[i]!]!;
        if (sum >= wantMass) {
          take = i + 1;
          break;
        }
      }
    }
    for (let i = 0; i < Math.max(0, take); i++) kept.push(boundary[i]!);
    if (kept.length === 0) kept.push(boundary[0] ?? argmax(probs));
    return kept;
  }
}

/** Probability buckets of a factor of two each; the last one takes everything smaller. */
const BUCKETS = 64;

/** Index of the largest value; the lowest index wins a tie. */
export function argmax(values: ArrayLike<number>): number {
  let best = 0;
  let bestValue = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v > bestValue) {
      bestValue = v;
      best = i;
    }
  }
  return best;
}

// Draws among `candidates` by their weight in `probs` (`mass` in all).
function pick(probs: Float32Array, candidates: readonly number[], mass: number, u: number): number {
  let target = u * mass;
  for (const id of candidates) {
    target -= probs[id]!;
    if (target < 0) return id;
  }
  for (let i = candidates.length - 1; i >= 0; i--) if (probs[candidates[i]!]! > 0) return candidates[i]!;
  return candidates[candidates.length - 1]!;
}

function drawFrom(probs: Float32Array, total: number, u: number): number {
  let target = u * total;
  for (let i = 0; i < probs.length; i++) {
    target -= probs[i]!;
    if (target < 0) return i;
  }
  // Rounding left a sliver: take the last token with any probability.
  for (let i = probs.length - 1; i >= 0; i--) if (probs[i]! > 0) return i;
  return 0;
}
