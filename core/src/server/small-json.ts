import { parse as parseRefusingProto } from '@hapi/bourne';
import type { IncomingMessage } from 'node:http';

/**
 * The largest body read on the direct path of {@link smallJsonLength}: one socket read's worth. Larger ones take the
 * body parser (or a worker thread, past `server.offloadJsonBytes`).
 */
export const SMALL_JSON_BYTES = 64 * 1024;

// The media types read directly: the JSON type alone, or with the charset the body is decoded in anyway.
const DIRECT_TYPES = new Set(['application/json', 'application/json; charset=utf-8', 'application/json;charset=utf-8']);

const DIGITS = /^\d+$/;

// Strict JSON, as the body parser takes it: an object or an array at the top, after RFC 8259 whitespace.
const STRICT_START = /^[ \t\n\r]*[[{]/;

/**
 * The Content-Length of a request whose body can be read and parsed directly, or undefined when it must take the body
 * parser: a POST, PUT or PATCH with a plain JSON media type, no Content-Encoding and a Content-Length from 1 to
 * `limit` bytes. Such a body parses exactly as the body parser would parse it (see {@link parseStrictJson}).
 */
export function smallJsonLength(req: IncomingMessage, limit: number): number | undefined {
  const { headers } = req;
  const type = headers['content-type'];
  if (type === undefined || !DIRECT_TYPES.has(type.toLowerCase())) return undefined;
  const encoding = headers['content-encoding'];
  if (encoding !== undefined && encoding !== 'identity') return undefined;
  const length = headers['content-length'];
  if (length === undefined || !DIGITS.test(length)) return undefined;
  const n = Number(length);
  return n > 0 && n <= limit && !req.closed ? n : undefined;
}

/**
 * Decodes a JSON body as UTF-8 (a byte order mark dropped) and parses it as the body parser does in its strict mode:
 * an object or an array at the top, and no `__proto__` key anywhere. Throws a SyntaxError with the body parser's
 * message otherwise. Returns the text as well, for the depth check.
 */
export function parseStrictJson(bytes: Uint8Array): { parsed: unknown; text: string } {
  let text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  if (!text) return { parsed: {}, text };
  if (!STRICT_START.test(text)) throw new SyntaxError('invalid JSON, only supports object and array');
  // The parse the body parser itself runs: JSON.parse, then a SyntaxError for any `__proto__` key.
  const parsed: unknown = parseRefusingProto(text, { protoAction: 'error' });
  return { parsed, text };
}

/** The message the body parser gives for a body it could not read whole, for an error `readBody` raised. */
export function bodyParserReadError(err: unknown): string {
  const message = (err as Error).message;
  if (message === 'the client closed the connection before sending the body') return 'request aborted';
  if (message.includes('than its Content-Length')) return 'request size did not match content length';
  return message;
}
