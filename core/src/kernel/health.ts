import type { Readiness } from '@nucleus/sdk';

/** One reason the server is not fully ready, e.g. a backend that fell back to CPU. */
export interface Condition {
  /** Who set it: `backend`, `model:resnet`, … */
  key: string;
  /**
   * `degraded`: serving, less well than asked (a CPU fallback); /ready stays 200 and says so, for a load balancer has
   * no better instance to send the traffic to. `unready`: something configured cannot be served (a model that failed
   * to load, an open circuit breaker); /ready answers 503.
   */
  severity: 'degraded' | 'unready';
  reason: string;
}

/**
 * What `/ready` reports: ready (perhaps degraded) unless starting, stopping, or a component set an `unready`
 * condition.
 */
export class HealthState implements Readiness {
  private readonly conditions = new Map<string, Condition>();
  private phase: 'starting' | 'running' | 'stopping' = 'starting';

  /** Marks the server as serving (after start) or draining (on shutdown). */
  setPhase(phase: 'starting' | 'running' | 'stopping'): void {
    this.phase = phase;
  }

  /** Sets or replaces the condition under `key`. */
  set(condition: Condition): void {
    this.conditions.set(condition.key, condition);
  }

  /** Clears the condition under `key`. */
  clear(key: string): void {
    this.conditions.delete(key);
  }

  /** The status {@link report} gives, without building the report: asked for every request. */
  status(): 'ready' | 'degraded' | 'unavailable' | 'starting' | 'stopping' {
    if (this.phase !== 'running') return this.phase;
    if (this.conditions.size === 0) return 'ready';
    for (const c of this.conditions.values()) if (c.severity === 'unready') return 'unavailable';
    return 'degraded';
  }

  /** The readiness report. */
  report(): {
    ready: boolean;
    status: 'ready' | 'degraded' | 'unavailable' | 'starting' | 'stopping';
    conditions: Condition[];
  } {
    const status = this.status();
    return { ready: status === 'ready' || status === 'degraded', status, conditions: [...this.conditions.values()] };
  }
}
