import type { DraftModel, DraftProposal, DraftProposer, DraftProposerFactory, DraftRequest } from '@nucleus/sdk';

/**
 * Draft-model speculation: a smaller model with the served model's vocabulary (another model, or the served model's
 * own first layers — self-speculation) runs k steps ahead of it. Under greedy sampling it drafts its most likely
 * tokens; under sampling it draws each draft from its own distribution at the request's temperature and hands that
 * distribution (q) to the loop, whose rejection sampling keeps the served model's distribution exactly.
 */
export class DraftModelProposer implements DraftProposer {
  readonly #model: DraftModel;

  constructor(model: DraftModel) {
    this.#model = model;
  }

  async propose(tokens: readonly number[], max: number, request?: DraftRequest): Promise<DraftProposal> {
    const sequence = request?.sequence ?? 0;
    const greedy = request === undefined || request.greedy || !(request.temperature > 0);
    const drafts: number[] = [];
    const probabilities: Float32Array[] = [];
    if (max <= 0 || tokens.length === 0) return { tokens: drafts };
    let logits = await this.#model.next(sequence, tokens);
    for (let i = 0; i < max; i++) {
      if (greedy) drafts.push(argmax(logits));
      else {
        const q = softmax(logits, request.temperature);
        drafts.push(draw(q, request.random()));
        probabilities.push(q);
      }
      // The last draft needs no logits after it: the served model gives its own token there.
      if (i + 1 < max) logits = await this.#model.next(sequence, [...tokens, ...drafts]);
    }
    return greedy ? { tokens: drafts } : { tokens: drafts, probabilities };
  }

  release(sequence: number): void {
    this.#model.release(sequence);
  }
}

function argmax(values: Float32Array): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

// Probabilities at temperature t, summing to 1.
function softmax(logits: Float32Array, t: number): Float32Array {
  let max = -Infinity;
  for (const v of logits) if (v > max) max = v;
  const out = new Float32Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i]! - max) / t);
    out[i] = e;
    total += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / total;
  return out;
}

function draw(q: Float32Array, u: number): number {
  let target = u;
  for (let i = 0; i < q.length; i++) {
    target -= q[i]!;
    if (target < 0) return i;
  }
  for (let i = q.length - 1; i >= 0; i--) if (q[i]! > 0) return i;
  return 0;
}

/** A proposer for a generation worker, over the draft model the worker opened (see `DraftProposerSpec.needsDraftModel`). */
const createDraftModelProposer: DraftProposerFactory = (_options, context) => {
  if (!context?.draftModel)
    throw new Error('the draft speculative method needs a draft model (models[].speculation.draft or draftLayers)');
  return new DraftModelProposer(context.draftModel);
};
export default createDraftModelProposer;
