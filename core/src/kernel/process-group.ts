import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { ProcessGroup } from '@nucleus/sdk';

/** Messages between a front process and the primary that forked it (IPC, JSON). */
export type GroupMessage =
  /** A process asks the primary for every process's value of `topic`. */
  | { nucleus: 'gather'; id: number; topic: string; timeoutMs: number }
  /** The primary asks a process for its value of `topic`. */
  | { nucleus: 'produce'; id: number; topic: string }
  | { nucleus: 'produced'; id: number; ok: boolean; value?: unknown }
  /** The primary's answer to `gather`: the values of the processes that answered, in process order. */
  | { nucleus: 'gathered'; id: number; values: unknown[] }
  /** A process is serving; `announcement` is the start-up line it would have printed itself. */
  | { nucleus: 'ready'; url: string; announcement: string };

/** Whether `m` is one of the group's messages (a worker's channel carries Node's own cluster messages too). */
export function isGroupMessage(m: unknown): m is GroupMessage {
  return typeof m === 'object' && m !== null && typeof (m as { nucleus?: unknown }).nucleus === 'string';
}

/** `server.processes` as a count: `auto` is the cores this process may use. */
export function frontProcessCount(setting: unknown): number {
  return setting === 'auto' ? availableParallelism() : typeof setting === 'number' && setting >= 1 ? setting : 1;
}

/**
 * This process's place in its {@link ProcessGroup}. Forked by the primary (`server.processes` > 1), gathers go
 * through the primary over IPC; on its own, the group is this process alone and a gather asks only its providers.
 */
export class ProcessGroupMember implements ProcessGroup {
  readonly size: number;
  readonly #providers = new Map<string, () => unknown>();
  readonly #waiting = new Map<number, (values: unknown[]) => void>();
  readonly #channel: NodeJS.Process | undefined;
  #next = 0;

  constructor(setting: unknown) {
    this.#channel = cluster.isWorker && process.send ? process : undefined;
    this.size = this.#channel ? frontProcessCount(setting) : 1;
    this.#channel?.on('message', this.#onMessage);
  }

  provide(topic: string, produce: () => unknown): () => void {
    this.#providers.set(topic, produce);
    return () => {
      if (this.#providers.get(topic) === produce) this.#providers.delete(topic);
    };
  }

  async gather(topic: string, timeoutMs = 5000): Promise<unknown[]> {
    if (!this.#channel) {
      const produce = this.#providers.get(topic);
      return produce ? [await produce()] : [];
    }
    const id = ++this.#next;
    return new Promise((resolve) => {
      // The primary answers by its own deadline; this one only covers a primary that is gone.
      const timer = setTimeout(() => this.#settle(id, []), timeoutMs + 1000);
      timer.unref();
      this.#waiting.set(id, (values) => {
        clearTimeout(timer);
        resolve(values);
      });
      this.#send({ nucleus: 'gather', id, topic, timeoutMs });
    });
  }

  /** Stops listening to the primary, so the channel does not keep the process alive. */
  close(): void {
    this.#channel?.off('message', this.#onMessage);
    for (const id of [...this.#waiting.keys()]) this.#settle(id, []);
  }

  /** Tells the primary this process serves `url`; the primary prints `announcement` once every process does. */
  announceReady(url: string, announcement: string): void {
    this.#send({ nucleus: 'ready', url, announcement });
  }

  #settle(id: number, values: unknown[]): void {
    const resolve = this.#waiting.get(id);
    this.#waiting.delete(id);
    resolve?.(values);
  }

  #send(message: GroupMessage): void {
    if (this.#channel?.connected) this.#channel.send!(message);
  }

  readonly #onMessage = (m: unknown): void => {
    if (!isGroupMessage(m)) return;
    if (m.nucleus === 'gathered') this.#settle(m.id, m.values);
    else if (m.nucleus === 'produce') void this.#produce(m.id, m.topic);
  };

  async #produce(id: number, topic: string): Promise<void> {
    const produce = this.#providers.get(topic);
    try {
      if (!produce) return this.#send({ nucleus: 'produced', id, ok: false });
      this.#send({ nucleus: 'produced', id, ok: true, value: await produce() });
    } catch {
      this.#send({ nucleus: 'produced', id, ok: false });
    }
  }
}
