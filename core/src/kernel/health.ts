/** One reason the server is not fully ready, e.g. a backend that fell back to CPU. */
export interface Condition {
  /** Who set it: `backend`, `model:resnet`, … */
  key: string;
  /** `degraded` keeps serving but answers /ready 503; `unready` means not serving yet. */
  severity: 'degraded' | 'unready';
  reason: string;
}

/** What `/ready` reports: ready unless starting, stopping, or some component set a condition. */
export class HealthState {
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

  /** The readiness report. */
  report(): { ready: boolean; status: 'ready' | 'degraded' | 'starting' | 'stopping'; conditions: Condition[] } {
    const conditions = [...this.conditions.values()];
    if (this.phase !== 'running') return { ready: false, status: this.phase, conditions };
    const degraded = conditions.length > 0;
    return { ready: !degraded, status: degraded ? 'degraded' : 'ready', conditions };
  }
}
