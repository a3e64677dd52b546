import { randomBytes, timingSafeEqual } from 'node:crypto';

/** A signed-in dashboard: the key it stands for stays here, on the server; the browser holds only `id`. */
export interface Session {
  readonly id: string;
  /** Sent back by the page in `X-CSRF-Token` on every write; a cross-site form cannot know it. */
  readonly csrf: string;
  readonly key: string;
  readonly name: string;
  readonly role: 'admin' | 'user';
  lastUsed: number;
}

/** Bounds of a {@link SessionStore}. */
export interface SessionStoreOptions {
  idleMs: number;
  max: number;
}

function token(): string {
  return randomBytes(32).toString('base64url');
}

/** Compares two strings in constant time for their length (CSRF tokens are all of one length). */
export function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Dashboard sessions, in memory: opaque random ids mapped to the key that signed in. An idle session ends after
 * `idleMs`; past `max` sessions the least recently used one ends. The map may be handed in, so that sessions outlive
 * the store (a reload of the plugin keeps them); a restart ends them all.
 */
export class SessionStore {
  constructor(
    private readonly options: SessionStoreOptions,
    // A Map keeps insertion order; a session used is moved to the end, so the first is the least recently used.
    private readonly sessions = new Map<string, Session>(),
  ) {
    this.trim();
  }

  create(key: string, name: string, role: 'admin' | 'user', now = Date.now()): Session {
    const session: Session = { id: token(), csrf: token(), key, name, role, lastUsed: now };
    this.sessions.set(session.id, session);
    this.trim();
    return session;
  }

  // A reload may bring a lower `max` than the sessions it was handed.
  private trim(): void {
    while (this.sessions.size > this.options.max) this.sessions.delete(this.sessions.keys().next().value!);
  }

  /** The live session with this id, marked used; undefined when unknown or idle too long. */
  get(id: string | undefined, now = Date.now()): Session | undefined {
    if (!id) return undefined;
    const session = this.sessions.get(id);
    if (!session) return undefined;
    this.sessions.delete(id);
    if (now - session.lastUsed > this.options.idleMs) return undefined;
    session.lastUsed = now;
    this.sessions.set(id, session);
    return session;
  }

  delete(id: string): void {
    this.sessions.delete(id);
  }

  get size(): number {
    return this.sessions.size;
  }
}
