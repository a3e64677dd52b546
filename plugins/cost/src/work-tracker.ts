import type { EventBus } from '@nucleus/sdk';
import type { Work } from './cost-meter.js';

/** Request ids are forgotten after this many without an end (a client that vanished mid-generation). */
const MAX_TRACKED = 10_000;

/**
 * Follows requests on the bus and hands each finished one to `record` with its model, key and worker time: a tensor
 * request's share of its batch's run (`computeMs / batchSize`), a generation's share of the engine steps it took
 * part in. The key comes from the HTTP request that started the work (`request.start`).
 */
export class WorkTracker {
  readonly #keys = new Map<string, string>();
  readonly #stepMs = new Map<string, number>();
  readonly #onDevice = new Set<string>();

  constructor(private readonly record: (work: Work) => void) {}

  /** Subscribes; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const offs = [
      events.on('request.start', (e) => {
        if (e.key === undefined) return;
        if (this.#keys.size >= MAX_TRACKED) this.#keys.delete(this.#keys.keys().next().value!);
        this.#keys.set(e.requestId, e.key);
      }),
      events.on('request.end', (e) => this.#keys.delete(e.requestId)),
      events.on('model.loaded', (e) => {
        // A backend other than the CPU one runs on an accelerator (cuda, rocm, tensorrt …).
        if (e.backend === 'cpu') this.#onDevice.delete(e.model);
        else this.#onDevice.add(e.model);
      }),
      events.on('inference.end', (e) => {
        if (e.batchSize === 0) return;
        const workerMs = e.computeMs / e.batchSize;
        this.#record(e.model, e.requestId, workerMs);
      }),
      events.on('engine.steps', (e) => {
        if (!e.requestIds || e.requestIds.length === 0) return;
        const share = e.durationMs / e.requestIds.length;
        for (const id of e.requestIds) {
          if (!this.#stepMs.has(id) && this.#stepMs.size >= MAX_TRACKED)
            this.#stepMs.delete(this.#stepMs.keys().next().value!);
          this.#stepMs.set(id, (this.#stepMs.get(id) ?? 0) + share);
        }
      }),
      events.on('generation.end', (e) => {
        const steps = this.#stepMs.get(e.requestId);
        this.#stepMs.delete(e.requestId);
        // Engines that report no steps per request: the generation's time past its queue wait.
        const workerMs = steps ?? Math.max(0, e.durationMs - (e.queueMs ?? 0));
        this.#record(e.model, e.requestId, workerMs);
      }),
    ];
    return () => {
      for (const off of offs) off();
    };
  }

  #record(model: string, requestId: string | undefined, workerMs: number): void {
    const key = requestId === undefined ? undefined : this.#keys.get(requestId);
    this.record({
      model,
      ...(key !== undefined && { key }),
      workerMs,
      deviceMs: this.#onDevice.has(model) ? workerMs : 0,
    });
  }
}
