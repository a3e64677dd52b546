/**
 * The HTTP front processes that serve one port together (`server.processes`): how many there are, and a way for a
 * plugin to gather a value from every one of them (the metrics exporter sums the processes' counters with it).
 */
export interface ProcessGroup {
  /** How many front processes serve the port; 1 when the server runs in one process. */
  readonly size: number;
  /** Answers `gather(topic)` from any process with what `produce` returns in this one; returns the undo. */
  provide(topic: string, produce: () => unknown): () => void;
  /**
   * What every process's provider for `topic` returns, this one's included. A process without a provider for it,
   * or one that does not answer within `timeoutMs` (default 5 s), is left out.
   */
  gather(topic: string, timeoutMs?: number): Promise<unknown[]>;
}
