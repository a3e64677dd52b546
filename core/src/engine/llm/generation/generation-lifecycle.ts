import type { GenerationWorkerClient } from './generation-worker-client.js';
import type { WireGenerateRequest } from './generation-messages.js';

/** How often a drain looks at what the old replicas still hold. */
const DRAIN_POLL_MS = 10;

/**
 * Runs one real generation on each replica before it takes traffic, so that a model that opens but cannot generate
 * (a graph that fails at its first step, a tokenizer that cannot encode) fails its swap instead of its first users.
 */
export async function warmUp(workers: readonly GenerationWorkerClient[], request: WireGenerateRequest): Promise<void> {
  await Promise.all(
    workers.map(async (worker) => {
      const { events } = await worker.generate(request);
      // Read to the end: the channel throws what the thread reported.
      for await (const _event of events);
    }),
  );
}

/**
 * Waits until no replica of `workers()` holds a request any more, or `timeoutMs` has passed; true when they drained.
 * It waits one turn of the event loop first, so that a request routed to the old replicas just before the switch
 * has reached them and is counted.
 */
export async function drain(workers: () => readonly GenerationWorkerClient[], timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  await new Promise((resolve) => setImmediate(resolve));
  for (;;) {
    if (workers().every((w) => w.pending === 0)) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, Math.min(DRAIN_POLL_MS, Math.max(1, deadline - Date.now()))));
  }
}

/**
 * Runs the lifecycle operations (load, swap, unload) of one model name one after another, so two never change one
 * model at once; those of different names run side by side (a swap draining for a while holds up no other model).
 */
export class LifecycleQueue {
  readonly #tails = new Map<string, Promise<unknown>>();

  run<T>(name: string, op: () => Promise<T>): Promise<T> {
    const run = (this.#tails.get(name) ?? Promise.resolve()).then(op, op);
    const tail = run.catch(() => undefined);
    this.#tails.set(name, tail);
    void tail.then(() => {
      if (this.#tails.get(name) === tail) this.#tails.delete(name);
    });
    return run;
  }
}
