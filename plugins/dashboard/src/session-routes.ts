import {
  badRequest,
  callerOf,
  type CredentialSource,
  NucleusError,
  type RouteContext,
  type RouteContribution,
} from '@nucleus/sdk';
import { cookieValue, SESSION_COOKIE } from './session-cookie.js';
import { sameToken, type SessionStore } from './session-store.js';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

const ENABLE_ADMIN =
  'no API key is configured, so the dashboard is read-only: start the server with NUCLEUS_ADMIN_KEY=<key> (or add auth.keys entries with role "admin" or "user") and sign in with that key';

/**
 * The session cookie as a credential: a request carrying a live session's cookie stands for the key that signed in.
 * A write (any method but GET, HEAD, OPTIONS) must also send the session's CSRF token in `X-CSRF-Token`, and a
 * WebSocket upgrade must come from the server's own origin: the cookie alone is what a cross-site page could make a
 * browser send.
 */
export function sessionCredentials(sessions: SessionStore): CredentialSource {
  return {
    name: 'dashboard-session',
    resolve(request) {
      const cookie = request.headers.cookie;
      // Most requests (API clients with a bearer key, or none) send no cookie: nothing to look up.
      if (cookie === undefined || cookie.length === 0) return undefined;
      const session = sessions.get(cookieValue(Array.isArray(cookie) ? cookie.join(';') : cookie, SESSION_COOKIE));
      if (!session) return undefined;
      if (request.upgrade) {
        const origin = request.headers.origin;
        if (origin !== undefined && hostOf(origin) !== request.headers.host)
          return {
            refused: `a WebSocket with a dashboard session must come from the server's own pages, not ${origin}`,
          };
      } else if (!SAFE_METHODS.has(request.method)) {
        const sent = request.headers['x-csrf-token'];
        if (typeof sent !== 'string' || !sameToken(sent, session.csrf))
          return {
            refused:
              'this write came with the dashboard session cookie but without its CSRF token: send the X-CSRF-Token header that signing in returned',
          };
      }
      return { token: session.key };
    },
  };
}

function hostOf(origin: string): string | undefined {
  try {
    return new URL(origin).host;
  } catch {
    return undefined;
  }
}

function bearerOf(ctx: RouteContext): string | undefined {
  return /^Bearer\s+(.+)$/i.exec(ctx.get('authorization'))?.[1]?.trim() || undefined;
}

function setCookie(ctx: RouteContext, value: string | null): void {
  ctx.cookies.set(SESSION_COOKIE, value, {
    httpOnly: true,
    sameSite: 'strict',
    secure: ctx.secure,
    path: '/',
    overwrite: true,
  });
}

/**
 * Sign in (a key or a token in `Authorization: Bearer` for a session cookie: whatever the server's key check accepts,
 * with the role it gives), who am I, and sign out.
 */
export function sessionRoutes(sessions: SessionStore): RouteContribution[] {
  return [
    {
      method: 'GET',
      path: '/dashboard/api/session',
      handler: (ctx) => {
        const caller = callerOf(ctx);
        if (!caller) return { mode: 'open', role: 'user', note: ENABLE_ADMIN };
        const session = sessions.get(cookieValue(ctx.get('cookie'), SESSION_COOKIE));
        return {
          mode: 'signed-in',
          role: caller.role,
          name: caller.name,
          ...(session && { csrfToken: session.csrf }),
        };
      },
    },
    {
      method: 'POST',
      path: '/dashboard/api/session',
      handler: (ctx) => {
        const caller = callerOf(ctx);
        if (!caller) throw new NucleusError(409, 'auth_not_configured', ENABLE_ADMIN);
        const key = bearerOf(ctx);
        if (!key)
          throw badRequest(
            'missing_api_key',
            'sign in with an API key or a token (JWT) in "Authorization: Bearer <key>"',
          );
        const session = sessions.create(key, caller.name, caller.role);
        setCookie(ctx, session.id);
        ctx.set('cache-control', 'no-store');
        ctx.status = 201;
        ctx.body = { mode: 'signed-in', role: caller.role, name: caller.name, csrfToken: session.csrf };
      },
    },
    {
      method: 'DELETE',
      path: '/dashboard/api/session',
      handler: (ctx) => {
        const id = cookieValue(ctx.get('cookie'), SESSION_COOKIE);
        if (id) sessions.delete(id);
        setCookie(ctx, null);
        return { mode: 'signed-out' };
      },
    },
  ];
}
