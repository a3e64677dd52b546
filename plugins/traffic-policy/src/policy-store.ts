import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '@nucleus/sdk';
import { checkPolicy, type TrafficPolicy } from './traffic-policy.js';

/** What the state file records: the admin API's changes over the config's policies. */
interface AdminChanges {
  set: Record<string, TrafficPolicy>;
  removed: string[];
}

/**
 * The policies set and removed through the admin API, kept in a JSON file (`stateFile`) so they outlive the process:
 * written whole and atomically (a temporary file renamed over it) after every change, read at activation. A file
 * that cannot be read or holds a bad policy is logged and skipped, never a reason not to start.
 */
export class PolicyStore {
  readonly #path: string;
  readonly #log: Logger;
  #changes: AdminChanges = { set: {}, removed: [] };

  constructor(path: string, logger: Logger) {
    this.#path = path;
    this.#log = logger;
  }

  /** The config's policies with the recorded changes applied over them. */
  restore(config: Record<string, TrafficPolicy>): Record<string, TrafficPolicy> {
    let raw: string;
    try {
      raw = readFileSync(this.#path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.#log.warn(
          { file: this.#path, err: (err as Error).message },
          'traffic policy state not read; using config',
        );
      return { ...config };
    }
    try {
      const parsed = JSON.parse(raw) as Partial<AdminChanges>;
      const removed = Array.isArray(parsed.removed) ? parsed.removed.filter((m) => typeof m === 'string') : [];
      const set: Record<string, TrafficPolicy> = {};
      for (const [model, policy] of Object.entries(parsed.set ?? {})) {
        try {
          set[model] = checkPolicy(policy);
        } catch (err) {
          this.#log.warn({ file: this.#path, model, err: (err as Error).message }, 'stored traffic policy skipped');
        }
      }
      this.#changes = { set, removed };
    } catch (err) {
      this.#log.warn(
        { file: this.#path, err: (err as Error).message },
        'traffic policy state is corrupt; using config',
      );
      return { ...config };
    }
    const policies = { ...config };
    for (const model of this.#changes.removed) delete policies[model];
    return { ...policies, ...this.#changes.set };
  }

  /** Records a policy set through the admin API. */
  set(model: string, policy: TrafficPolicy): void {
    this.#changes.set[model] = policy;
    this.#changes.removed = this.#changes.removed.filter((m) => m !== model);
    this.#write();
  }

  /** Records a policy removed through the admin API (one from config stays removed too). */
  remove(model: string): void {
    delete this.#changes.set[model];
    if (!this.#changes.removed.includes(model)) this.#changes.removed.push(model);
    this.#write();
  }

  #write(): void {
    mkdirSync(dirname(this.#path), { recursive: true });
    const temp = `${this.#path}.${process.pid}.tmp`;
    writeFileSync(temp, `${JSON.stringify(this.#changes, null, 2)}\n`);
    renameSync(temp, this.#path);
  }
}
