import { configOf } from '../helpers/config.js';
// A generation engine as the kernel builds it, without the rest of the kernel: real workers, real ORT.
import { pointOf } from '../helpers/extension-point.js';
import { testBuiltins, testFormats, testFormatsWithBuiltin } from '../helpers/llm.js';
import type {
  Backend,
  EventType,
  ExtensionPointView,
  GenerateRequest,
  GenerationEvent,
  GenerationService,
  NucleusEvents,
} from '@nucleus/sdk';
import {
  GenerationEngine,
  type GenerationEngineOptions,
} from '@nucleus/core/internal/engine/llm/generation/generation-engine';
import { TypedEventBus } from '@nucleus/core/internal/kernel/event-bus';
import { createLogger } from '@nucleus/core/internal/kernel/logger';

const NO_BACKENDS: ExtensionPointView<Backend> = {
  id: 'backend',
  list: () => [],
  first: () => undefined,
  find: () => undefined,
  use: (c, fn) => Promise.resolve(fn(c.value)),
  onChange: () => () => undefined,
};

/**
 * An engine on the built-in models (or `models` from config), its event bus and what it emitted; `setConfig` changes
 * a key while it serves, as a runtime config patch does.
 */
export function testEngine(
  config: Record<string, unknown> = {},
  options: Partial<
    Pick<GenerationEngineOptions, 'faultInjection' | 'health' | 'strategies' | 'replicaRouters' | 'cachePolicies'>
  > = {},
): {
  engine: GenerationEngine;
  events: TypedEventBus;
  emitted: { type: EventType; payload: unknown }[];
  setConfig(path: string, value: unknown): void;
} {
  const logger = createLogger({ level: 'silent' });
  const events = new TypedEventBus(logger);
  const emitted: { type: EventType; payload: unknown }[] = [];
  events.onAny((type, payload) => emitted.push({ type, payload }));
  // As the test kit does: models open when a test uses them, and count only the generations it asks for.
  const store = configOf({ 'scheduler.batchWindowMs': 5, 'startup.warmUp': false, ...config });
  const engine = new GenerationEngine({
    config: store,
    events,
    logger,
    backends: NO_BACKENDS,
    // Built-ins serve when nothing is configured, through the format of their own folder as on a server.
    formats: config.models === undefined ? testFormatsWithBuiltin : testFormats,
    builtins: testBuiltins,
    ...options,
  });
  const setConfig = (path: string, value: unknown) => store.set(path, value);
  return { engine, events, emitted, setConfig };
}

/** An extension point as the kernel shows it, holding `values` (contributed by `pluginId`). */
export function viewOf<T extends { name: string }>(
  id: string,
  pluginId: string,
  ...values: T[]
): ExtensionPointView<T> {
  return pointOf(id, pluginId, values);
}

/** What a generation produced, per choice. */
export interface Generated {
  tokens: number[][];
  texts: string[];
  pieces: string[][];
  finishes: Extract<GenerationEvent, { type: 'finish' }>[];
  usage?: Extract<GenerationEvent, { type: 'done' }>['usage'];
}

/** Runs a generation to its end, keeping every event. */
export async function generateAll(
  service: GenerationService,
  request: GenerateRequest,
  signal?: AbortSignal,
  onEvent?: (e: GenerationEvent) => void,
): Promise<Generated> {
  const stream = await service.generate(request, signal);
  const n = request.n ?? 1;
  const out: Generated = { tokens: [], texts: [], pieces: [], finishes: [] };
  for (let i = 0; i < n; i++) {
    out.tokens.push([]);
    out.texts.push('');
    out.pieces.push([]);
  }
  for await (const e of stream) {
    onEvent?.(e);
    if (e.type === 'token') {
      out.tokens[e.index]!.push(e.tokenId);
      out.texts[e.index] += e.text;
      out.pieces[e.index]!.push(e.text);
    } else if (e.type === 'finish') {
      out.texts[e.index] += e.text;
      out.finishes[e.index] = e;
    } else out.usage = e.usage;
  }
  return out;
}

/** Events of one type, typed. */
export function ofType<K extends EventType>(
  emitted: { type: EventType; payload: unknown }[],
  type: K,
): NucleusEvents[K][] {
  return emitted.filter((e) => e.type === type).map((e) => e.payload as NucleusEvents[K]);
}
