import type { EventBus, EventListener, EventType, Logger, NucleusEvents } from '@nucleus/sdk';

type AnyListener = <K extends EventType>(type: K, payload: NucleusEvents[K]) => void;

/**
 * The kernel's typed event bus. Delivery is synchronous; a throwing listener is logged and skipped so telemetry never
 * breaks a request.
 */
export class TypedEventBus implements EventBus {
  private readonly listeners = new Map<EventType, Set<EventListener<EventType>>>();
  private readonly anyListeners = new Set<AnyListener>();

  constructor(private readonly logger?: Logger) {}

  on<K extends EventType>(type: K, listener: EventListener<K>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(listener as EventListener<EventType>);
    return () => void set.delete(listener as EventListener<EventType>);
  }

  onAny(listener: AnyListener): () => void {
    this.anyListeners.add(listener);
    return () => void this.anyListeners.delete(listener);
  }

  emit<K extends EventType>(type: K, payload: NucleusEvents[K]): void {
    // Several events per request reach several listeners each: no closure or iterator made per delivery.
    const listeners = this.listeners.get(type);
    if (listeners) {
      for (const listener of listeners) {
        try {
          (listener as EventListener<K>)(payload);
        } catch (err) {
          this.threw(type, err);
        }
      }
    }
    for (const listener of this.anyListeners) {
      try {
        listener(type, payload);
      } catch (err) {
        this.threw(type, err);
      }
    }
  }

  /** Number of listeners, for leak checks. */
  listenerCount(): number {
    let n = this.anyListeners.size;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  private threw(type: EventType, err: unknown): void {
    this.logger?.warn({ err, event: type }, 'event listener threw; skipped');
  }
}
