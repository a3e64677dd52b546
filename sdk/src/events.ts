import type { PluginState } from './plugin-state.js';

/** Every event the kernel emits, by type; exporters subscribe to these and never to the engine directly. */
export interface NucleusEvents {
  'plugin.state': { id: string; version: string; state: PluginState; previous: PluginState; error?: string };
  'plugin.reloaded': { id: string; fromVersion: string; toVersion: string; durationMs: number };
  'plugin.reloadFailed': { id: string; version: string; error: string };
  'extension.changed': { point: string; change: 'added' | 'removed'; pluginId: string; name: string };
  'config.changed': { path: string; value: unknown; previous: unknown };
  'request.start': { requestId: string; method: string; path: string };
  'request.end': { requestId: string; method: string; path: string; route: string; status: number; durationMs: number; errorCode?: string };
  'model.loading': { model: string; version: string };
  'model.loaded': { model: string; version: string; durationMs: number; backend: string };
  'model.unloaded': { model: string; version: string };
  'model.failed': { model: string; version: string; error: string };
  'backend.fallback': { requested: string; chosen: string; reason: string };
}

/** The name of a kernel event. */
export type EventType = keyof NucleusEvents;

/** A listener for one event type. */
export type EventListener<K extends EventType> = (payload: NucleusEvents[K]) => void;

/** The kernel's typed event bus; a listener that throws is logged and never breaks the emitter. */
export interface EventBus {
  /** Subscribes; returns the function that unsubscribes. */
  on<K extends EventType>(type: K, listener: EventListener<K>): () => void;
  /** Subscribes to every event; returns the function that unsubscribes. */
  onAny(listener: <K extends EventType>(type: K, payload: NucleusEvents[K]) => void): () => void;
  /** Delivers an event to its listeners, synchronously. */
  emit<K extends EventType>(type: K, payload: NucleusEvents[K]): void;
}
