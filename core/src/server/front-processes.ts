import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '@nucleus/sdk';
import { type GroupMessage, isGroupMessage } from '../kernel/process-group.js';

interface Gathering {
  requester: Worker;
  requesterId: number;
  /** Answers by worker id; the workers asked, in the order they were forked. */
  answers: Map<number, { ok: boolean; value?: unknown }>;
  asked: Worker[];
  timer: NodeJS.Timeout;
}

/**
 * The primary of `server.processes` > 1: forks the HTTP front processes (each runs `nucleus serve` with the same
 * arguments and listens on the shared port through node:cluster), says the server is up once all of them are,
 * relays `ProcessGroup.gather` between them, replaces one that dies while serving, and on SIGTERM or SIGINT lets
 * every one drain (each runs its own graceful shutdown) before it exits.
 */
export class FrontProcesses {
  readonly #ready = new Set<number>();
  readonly #gatherings = new Map<number, Gathering>();
  #nextGather = 0;
  #announced = false;
  #stopping = false;
  #exitCode = 0;
  #done!: (code: number) => void;

  constructor(
    private readonly count: number,
    private readonly logger: Logger,
    private readonly write: (text: string) => void = (t) => process.stdout.write(t),
  ) {}

  /** Forks the processes and resolves with the exit code once every one has exited. */
  run(): Promise<number> {
    const finished = new Promise<number>((resolve) => (this.#done = resolve));
    for (let i = 0; i < this.count; i++) this.#fork();
    const stop = (signal: NodeJS.Signals) => this.stop(signal);
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
    return finished.finally(() => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
    });
  }

  /** Asks every process to drain and exit. */
  stop(signal: NodeJS.Signals | 'start-up failure' = 'SIGTERM'): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.logger.info({ signal, processes: this.#workers().map((w) => w.process.pid) }, 'stopping front processes');
    for (const w of this.#workers()) w.process.kill('SIGTERM');
    this.#exitIfDone();
  }

  #workers(): Worker[] {
    return Object.values(cluster.workers ?? {}).filter((w): w is Worker => w !== undefined);
  }

  #fork(): void {
    const worker = cluster.fork();
    worker.on('message', (m: unknown) => isGroupMessage(m) && this.#onMessage(worker, m));
    worker.once('exit', (code, signal) => this.#onExit(worker, code, signal));
  }

  #onExit(worker: Worker, code: number | null, signal: string | null): void {
    const wasReady = this.#ready.delete(worker.id);
    for (const g of this.#gatherings.values()) if (g.asked.includes(worker)) this.#answer(g, worker, { ok: false });
    if (this.#stopping) {
      if (code) this.#exitCode = Math.max(this.#exitCode, code);
      return this.#exitIfDone();
    }
    if (!this.#announced || !wasReady) {
      // It never served: a bad config or a port in use, which every other process would meet too.
      this.#exitCode = code ?? 1;
      this.logger.error({ pid: worker.process.pid, code, signal }, 'a front process failed to start');
      return this.stop('start-up failure');
    }
    this.logger.error({ pid: worker.process.pid, code, signal }, 'a front process exited; starting another');
    this.#fork();
  }

  #exitIfDone(): void {
    if (this.#stopping && this.#workers().every((w) => w.isDead())) this.#done(this.#exitCode);
  }

  #onMessage(worker: Worker, m: GroupMessage): void {
    if (m.nucleus === 'ready') {
      this.#ready.add(worker.id);
      if (!this.#announced && this.#ready.size === this.count) {
        this.#announced = true;
        this.write(this.#announcement(m.announcement));
      } else if (this.#announced) {
        this.logger.info({ pid: worker.process.pid, url: m.url }, 'front process serving');
      }
    } else if (m.nucleus === 'gather') {
      this.#gather(worker, m.id, m.topic, m.timeoutMs);
    } else if (m.nucleus === 'produced') {
      const g = this.#gatherings.get(m.id);
      if (g) this.#answer(g, worker, { ok: m.ok, value: m.value });
    }
  }

  // The first process's start-up line, with the processes; a JSON line gets them as fields, a banner as a line.
  #announcement(text: string): string {
    const pids = [...this.#ready].map((id) => cluster.workers?.[id]?.process.pid);
    if (text.startsWith('{')) {
      try {
        return `${JSON.stringify({ ...(JSON.parse(text) as object), processes: this.count, pids })}\n`;
      } catch {
        // Not one JSON object after all: print it as it is.
      }
    }
    return `${text}  ${this.count} front processes: ${pids.join(', ')}\n`;
  }

  #gather(requester: Worker, requesterId: number, topic: string, timeoutMs: number): void {
    const id = ++this.#nextGather;
    const asked = this.#workers().filter((w) => this.#ready.has(w.id) && w.isConnected());
    if (!asked.includes(requester)) asked.push(requester);
    const g: Gathering = {
      requester,
      requesterId,
      answers: new Map(),
      asked,
      timer: setTimeout(() => this.#finish(id), timeoutMs),
    };
    this.#gatherings.set(id, g);
    for (const w of asked) w.send({ nucleus: 'produce', id, topic } satisfies GroupMessage);
  }

  #answer(g: Gathering, worker: Worker, answer: { ok: boolean; value?: unknown }): void {
    g.answers.set(worker.id, answer);
    if (g.answers.size >= g.asked.length) {
      const id = [...this.#gatherings].find(([, v]) => v === g)?.[0];
      if (id !== undefined) this.#finish(id);
    }
  }

  #finish(id: number): void {
    const g = this.#gatherings.get(id);
    if (!g) return;
    this.#gatherings.delete(id);
    clearTimeout(g.timer);
    const values = g.asked.flatMap((w) => {
      const a = g.answers.get(w.id);
      return a?.ok ? [a.value] : [];
    });
    if (g.requester.isConnected())
      g.requester.send({ nucleus: 'gathered', id: g.requesterId, values } satisfies GroupMessage);
  }
}
