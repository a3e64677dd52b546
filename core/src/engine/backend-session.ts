import * as ort from 'onnxruntime-node';
import { NucleusError, type Backend, type EventBus, type Logger, type SessionOptions } from '@nucleus/sdk';
import { CPU_BACKEND, type BackendSelection, type WorkerBackendSpec } from './backend-selector.js';

/** A session and the backend it really runs on. */
export interface BackendSession {
  session: ort.InferenceSession;
  backend: Backend;
  /** The session options ORT accepted. */
  options: SessionOptions;
  /** Why the session is not on the requested backend: from selection, or because ORT rejected the provider. */
  fallbackReason?: string;
}

/** Options of {@link createBackendSession}. */
export interface CreateBackendSessionOptions {
  /** Where to retry when ORT rejects the chosen backend's provider; without one the error is thrown. */
  fallback?: Backend;
  /** The model's own backend options. */
  overrides?: Record<string, unknown>;
  /** Receives `backend.fallback` when ORT rejects the provider. */
  events?: Pick<EventBus, 'emit'>;
  logger?: Logger;
  /** Providers the loaded onnxruntime-node registers; default `listSupportedBackends()`. */
  registeredProviders?: () => readonly string[];
}

function providerNames(options: SessionOptions): string[] {
  return (options.executionProviders ?? []).map((ep) => (typeof ep === 'string' ? ep : ep.name));
}

function open(model: string | Uint8Array, options: SessionOptions): Promise<ort.InferenceSession> {
  return typeof model === 'string'
    ? ort.InferenceSession.create(model, options)
    : ort.InferenceSession.create(model, options);
}

function firstLine(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return (
    message
      .split('\n')
      .find((l) => l.trim() !== '')
      ?.trim() ?? message
  );
}

/**
 * Creates an ORT session with the selected backend's options. ORT has no fallback of its own: a provider whose
 * libraries are missing makes `create` reject ("Failed to load shared library"), and onnxruntime-common quietly
 * drops a provider it does not know. Either way this retries on `fallback` (the CPU backend) and says why.
 */
export async function createBackendSession(
  model: string | Uint8Array,
  selection: BackendSelection,
  options: CreateBackendSessionOptions = {},
): Promise<BackendSession> {
  const { backend } = selection;
  const sessionOptions = backend.sessionOptions(options.overrides);
  let rejection: string;
  const registered = (options.registeredProviders ?? (() => ort.listSupportedBackends().map((b) => b.name)))();
  const unknown = providerNames(sessionOptions).filter((name) => !registered.includes(name));
  if (unknown.length > 0) {
    rejection = `onnxruntime-node has no ${unknown.join(', ')} execution provider (it offers ${registered.join(', ')})`;
  } else {
    try {
      const session = await open(model, sessionOptions);
      return {
        session,
        backend,
        options: sessionOptions,
        ...(selection.fallbackReason !== undefined && { fallbackReason: selection.fallbackReason }),
      };
    } catch (err) {
      if (backend.name === CPU_BACKEND || options.fallback === undefined) throw err;
      rejection = `ORT could not create a session on ${backend.name} (${firstLine(err)})`;
    }
  }
  const fallback = options.fallback;
  if (fallback === undefined || backend === fallback) {
    throw new NucleusError(500, 'backend_rejected', rejection);
  }
  const fallbackOptions = fallback.sessionOptions(options.overrides);
  let session: ort.InferenceSession;
  try {
    session = await open(model, fallbackOptions);
  } catch (err) {
    throw new NucleusError(
      500,
      'session_create_failed',
      `${rejection}, and on ${fallback.name} it failed too: ${firstLine(err)}`,
      { cause: err },
    );
  }
  const fallbackReason = `${rejection}; running on ${fallback.name} instead`;
  options.logger?.warn(
    { requested: selection.requested, chosen: fallback.name, reason: fallbackReason },
    'backend fallback',
  );
  options.events?.emit('backend.fallback', {
    requested: selection.requested,
    chosen: fallback.name,
    reason: fallbackReason,
  });
  return { session, backend: fallback, options: fallbackOptions, fallbackReason };
}

// The backends live in plugins on the main thread; in a worker they are only their session options.
function optionsBackend(name: string, options: SessionOptions): Backend {
  return {
    name,
    rank: 0,
    probe: async () => ({ usable: true, devices: [], executionProviders: [] }),
    sessionOptions: () => options,
  };
}

/**
 * {@link createBackendSession} inside a worker, on the backend `spec` names; `rejected` when ORT rejected its
 * provider and the session opened on the fallback.
 */
export async function createWorkerSession(
  model: string | Uint8Array,
  spec: WorkerBackendSpec,
): Promise<BackendSession & { rejected: boolean }> {
  const primary = optionsBackend(spec.backend.name, spec.backend.options);
  const created = await createBackendSession(
    model,
    {
      backend: primary,
      probe: { usable: true, devices: [], executionProviders: [] },
      requested: spec.backend.requested,
      ...(spec.backend.fallbackReason !== undefined && { fallbackReason: spec.backend.fallbackReason }),
    },
    spec.fallback ? { fallback: optionsBackend(spec.fallback.name, spec.fallback.options) } : {},
  );
  return { ...created, rejected: created.backend !== primary };
}
