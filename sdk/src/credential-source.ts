import type { IncomingHttpHeaders } from 'node:http';

/** What a {@link CredentialSource} sees of a request or of a WebSocket upgrade. */
export interface CredentialRequest {
  readonly method: string;
  readonly headers: IncomingHttpHeaders;
  /** The connection is TLS. */
  readonly encrypted: boolean;
  /** A WebSocket upgrade to `/ws`, not a plain request. */
  readonly upgrade: boolean;
}

/**
 * What a source found: the credential the request stands for (an API key or token, checked by the server as if it
 * came in `Authorization: Bearer`), or why the request must be refused (403, the message shown as given).
 */
export type CredentialResolution = { readonly token: string } | { readonly refused: string };

/**
 * A way to find a request's credential other than the `Authorization` header, such as a session cookie mapped on the
 * server to a key (`credentials` point). Asked only when the request sends no bearer credential; the first source
 * that answers wins. It must not throw, and is called for every such request, so it answers from memory.
 */
export interface CredentialSource {
  readonly name: string;
  /** The credential the request carries by this source's means, or undefined when it carries none. */
  resolve(request: CredentialRequest): CredentialResolution | undefined;
}
