import type { EventBus } from '@nucleus/sdk';
import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * The cost plugin's and the tuner's figures as Prometheus metrics, from their events (`cost.accrued`,
 * `tuner.decision`): cost and resource seconds per model and key, and each tuned knob's value. Named
 * `<namespace>_…`; under the `vllm` namespace, `nucleus_…`, as vLLM has no such metrics.
 */
export class CostTuningMetrics {
  readonly #cost: Counter<'model_name' | 'key' | 'currency'>;
  readonly #cpu: Counter<'model_name' | 'key'>;
  readonly #device: Counter<'model_name' | 'key'>;
  readonly #memory: Counter<'model_name' | 'key'>;
  readonly #knob: Gauge<'model_name' | 'knob'>;
  readonly #decisions: Counter<'model_name' | 'knob' | 'direction'>;

  constructor(registry: Registry, namespace: string) {
    const ns = namespace === 'vllm' ? 'nucleus' : namespace;
    const registers = [registry];
    const labels = ['model_name', 'key'] as const;
    this.#cost = new Counter({
      name: `${ns}_inference_cost_total`,
      help: 'Cost of inference requests at the configured prices, by model and API key (empty key: none).',
      labelNames: ['model_name', 'key', 'currency'],
      registers,
    });
    this.#cpu = new Counter({
      name: `${ns}_inference_cpu_seconds_total`,
      help: 'Process CPU seconds attributed to inference requests, by model and API key.',
      labelNames: labels,
      registers,
    });
    this.#device = new Counter({
      name: `${ns}_inference_device_seconds_total`,
      help: 'Accelerator seconds attributed to inference requests, by model and API key.',
      labelNames: labels,
      registers,
    });
    this.#memory = new Counter({
      name: `${ns}_inference_memory_gigabyte_seconds_total`,
      help: 'Resident memory held while inference requests ran, in GB-seconds, by model and API key.',
      labelNames: labels,
      registers,
    });
    this.#knob = new Gauge({
      name: `${ns}_tuner_knob`,
      help: "A knob as the tuner last set it: a model's maxBatchSize or maxQueueDelayMs, or maxRunning (model *).",
      labelNames: ['model_name', 'knob'],
      registers,
    });
    this.#decisions = new Counter({
      name: `${ns}_tuner_decisions_total`,
      help: 'Changes the tuner made, by model, knob and direction (up or down).',
      labelNames: ['model_name', 'knob', 'direction'],
      registers,
    });
  }

  /** Subscribes; returns the function that unsubscribes. */
  attach(events: EventBus): () => void {
    const offs = [
      events.on('cost.accrued', (e) => {
        const labels = { model_name: e.model, key: e.key ?? '' };
        this.#cost.inc({ ...labels, currency: e.currency }, e.cost);
        this.#cpu.inc(labels, e.cpuSeconds);
        this.#device.inc(labels, e.deviceSeconds);
        this.#memory.inc(labels, e.memoryGbSeconds);
      }),
      events.on('tuner.decision', (e) => {
        this.#knob.set({ model_name: e.model, knob: e.knob }, e.value);
        this.#decisions.inc({ model_name: e.model, knob: e.knob, direction: e.value > e.previous ? 'up' : 'down' });
      }),
    ];
    return () => {
      for (const off of offs) off();
    };
  }
}
