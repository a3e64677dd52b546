import type { ConfigReader } from '../../../kernel/config/index.js';
import { performance } from 'node:perf_hooks';
import {
  badRequest,
  type EventBus,
  type ExtensionPointView,
  type GenerateRequest,
  type GenerationStream,
  type Logger,
  type NucleusError,
  type SchedulerStrategy,
} from '@nucleus/sdk';
import type { HealthState } from '../../../kernel/health.js';
import { AdmissionGate } from '../../admission/admission-gate.js';
import { CircuitBreaker, type BreakerState } from '../../circuit-breaker.js';
import { AdmittedGeneration, failureKeyOf } from './admitted-generation.js';
import type { GenerationReplicas } from './generation-replicas.js';
import { toWireGenerate } from './request-schema.js';
import { breakerKey, type ServedModel } from './served-model.js';

/** What {@link GenerationAdmission} needs. */
export interface GenerationAdmissionOptions {
  config: ConfigReader;
  events: EventBus;
  logger: Logger;
  health?: HealthState;
  strategies?: ExtensionPointView<SchedulerStrategy>;
}

/** The served models as admission sees them. */
export interface AdmittedModels {
  /** The model served under a name, if any (a fallback). */
  served(name: string): ServedModel | undefined;
  /** The model that serves what was admitted for `model` (its successor once it is retired). */
  serving(model: ServedModel): ServedModel;
  /** Its replicas, opened on first use. */
  replicasOf(model: ServedModel): Promise<GenerationReplicas>;
}

/**
 * Who runs a generation and when: the server-wide gate (`scheduler.maxRunning` run, the rest wait in the queue in
 * the order `scheduler.strategy` gives), each model's circuit breaker, and its configured fallback while the breaker
 * is open. A request of several prompts is admitted as one unit. Each admitted stream reports `generation.start` and
 * `generation.end` and tells its breaker how it ended.
 */
export class GenerationAdmission {
  /** Server-wide admission of generations: `scheduler.maxRunning` run, the rest wait (queue.*). */
  readonly #gate: AdmissionGate;

  constructor(private readonly options: GenerationAdmissionOptions) {
    this.#gate = new AdmissionGate({
      config: options.config,
      strategies: options.strategies,
      onDepth: (depth) => {
        for (const priority of ['high', 'normal', 'low'] as const)
          options.events.emit('queue.depth', { priority, depth: depth[priority] });
      },
    });
  }

  /** Generations holding a running slot, and those waiting for one. */
  get status(): { running: number; waiting: number; shedding: boolean } {
    return { running: this.#gate.running, waiting: this.#gate.waiting, shedding: this.#gate.queue.isShedding };
  }

  /** Generations that run at once (`scheduler.maxRunning`): no request may hold more. */
  get capacity(): number {
    return this.#gate.capacity;
  }

  /** Ends every generation still waiting for a slot with `err`. */
  rejectAll(err: NucleusError): void {
    this.#gate.queue.rejectAll(err);
  }

  /**
   * A breaker for version `version` of the model `name` that fails its generations fast (503 `circuit_open`) while it
   * keeps failing; each version has its own, so a failing canary does not stop its stable version.
   */
  breaker(name: string, version = '1'): CircuitBreaker {
    return new CircuitBreaker({
      label: version === '1' ? `model '${name}'` : `model '${name}' version ${version}`,
      settings: () => ({
        failureThreshold: this.options.config.get('breaker.failureThreshold'),
        cooldownMs: this.options.config.get('breaker.cooldownMs'),
      }),
      onChange: (state, reason) => this.#breakerChanged(name, version, state, reason),
    });
  }

  /**
   * Admits the generations of `requested` as one unit: one queue entry costing a running slot each, all submitted
   * together; when one is refused, those already submitted are cancelled and every slot is given back.
   */
  async admit(
    requested: ServedModel,
    requests: readonly GenerateRequest[],
    signal: AbortSignal | undefined,
    models: AdmittedModels,
  ): Promise<GenerationStream[]> {
    if (requested.kind !== 'llm')
      throw badRequest(
        'model_cannot_generate',
        `model '${requested.name}' is an embedding model; it cannot generate text`,
        'model',
      );
    const wires = requests.map(toWireGenerate);
    const first = requests[0]!;
    const model = this.#pass(requested, first.requestId, models);
    const breaker = model.breaker;
    let slot: Awaited<ReturnType<AdmissionGate['acquire']>>;
    try {
      slot = await this.#gate.acquire({
        priority: wires[0]!.priority,
        cost: wires.length,
        ...(first.deadlineMs !== undefined && { deadlineMs: first.deadlineMs }),
        ...(signal !== undefined && { signal }),
      });
    } catch (err) {
      // Shed, timed out or cancelled in the queue: nothing learnt about the model.
      breaker.ignored();
      throw err;
    }
    const admittedAt = performance.now();
    let admitted: Awaited<ReturnType<GenerationReplicas['generate']>>[];
    try {
      const replicas = await models.replicasOf(models.serving(model));
      const settled = await Promise.allSettled(wires.map((wire) => replicas.generate(wire, signal)));
      const refused = settled.find((r) => r.status === 'rejected');
      if (refused) {
        for (const r of settled) if (r.status === 'fulfilled') void r.value.events[Symbol.asyncIterator]().return?.();
        throw refused.reason;
      }
      admitted = settled.map((r) => (r as PromiseFulfilledResult<(typeof admitted)[number]>).value);
    } catch (err) {
      slot.release();
      breaker.failed(err);
      throw err;
    }
    // A cancelled request frees its slots even when nobody reads its streams any more.
    signal?.addEventListener(
      'abort',
      () => {
        slot.release();
        breaker.ignored();
      },
      { once: true },
    );
    return admitted.map(({ admission, events }, i) => {
      const request = requests[i]!;
      const id = randomId();
      const priority = request.priority ?? 'normal';
      this.options.events.emit('generation.start', {
        model: model.name,
        version: model.version,
        requestId: request.requestId ?? id,
        promptTokens: admission.promptTokens,
        ...(admission.cachedTokens !== undefined && { cachedPromptTokens: admission.cachedTokens }),
        maxTokens: admission.maxTokens,
        priority,
      });
      return new AdmittedGeneration(
        id,
        model.name,
        model.version,
        admission.promptTokens,
        admission.maxTokens,
        events,
        (summary) => {
          slot.release(1);
          if (summary.error !== undefined) breaker.failed(summary.error, failureKeyOf(summary.error));
          else if (summary.finishReason === 'abort') breaker.ignored();
          else breaker.succeeded();
          this.options.events.emit('generation.end', {
            model: model.name,
            version: model.version,
            requestId: request.requestId ?? id,
            promptTokens: admission.promptTokens,
            completionTokens: summary.completionTokens,
            ...(summary.firstTokenAt !== undefined && { ttftMs: summary.firstTokenAt - admittedAt }),
            ...(summary.completionTokens > 1 &&
              summary.firstTokenAt !== undefined && {
                meanItlMs: (summary.endedAt - summary.firstTokenAt) / (summary.completionTokens - 1),
              }),
            durationMs: summary.endedAt - admittedAt,
            finishReason: summary.finishReason,
            priority,
            ...(summary.errorCode !== undefined && { errorCode: summary.errorCode }),
          });
        },
      );
    });
  }

  // As the tensor engine does: an open breaker makes /ready degraded with why, and the event lets dashboards follow.
  #breakerChanged(name: string, version: string, state: BreakerState, reason: string): void {
    const key = breakerKey(name, version);
    if (state === 'closed') this.options.health?.clear(key);
    else
      this.options.health?.set({
        key,
        // Its requests fail fast: this instance cannot serve the model now.
        severity: 'unready',
        reason: `model '${name}'${version === '1' ? '' : ` version ${version}`}: circuit breaker ${state}: ${reason}`,
      });
    this.options.events.emit('breaker.state', { model: name, version, state, reason });
    this.options.logger[state === 'closed' ? 'info' : 'warn'](
      { model: name, version, state, reason },
      'circuit breaker',
    );
  }

  // The model that takes a request for `model`: itself when its breaker lets the request through, otherwise its
  // configured fallback (`models[].fallback`, another LLM served here) when that one's breaker does; else the
  // first refusal. The breaker that let it through must hear how the request ended.
  #pass(model: ServedModel, requestId: string | undefined, models: AdmittedModels): ServedModel {
    try {
      model.breaker.admit();
      return model;
    } catch (err) {
      const configured = this.options.config.get('models');
      const name = configured.find((m) => m.name === model.name)?.fallback;
      const fallback = name === undefined || name === model.name ? undefined : models.served(name);
      if (fallback?.kind !== 'llm' || fallback.state === 'failed') throw err;
      try {
        fallback.breaker.admit();
      } catch {
        // The fallback is failing too: the client hears about the model it asked for.
        throw err;
      }
      const reason = `${(err as NucleusError).code}: ${(err as NucleusError).message}`;
      this.options.events.emit('model.fallback', {
        model: model.name,
        fallback: fallback.name,
        reason,
        ...(requestId !== undefined && { requestId }),
      });
      this.options.logger.warn(
        { model: model.name, fallback: fallback.name, reason },
        'serving the request with the fallback model',
      );
      return fallback;
    }
  }
}

function randomId(): string {
  return crypto.randomUUID().replaceAll('-', '');
}
