import type { Duplex } from 'node:stream';
import { NucleusError } from '@nucleus/sdk';

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
};

/** The error for a request Node's HTTP parser refused before any route saw it. */
function errorFor(err: NodeJS.ErrnoException & { reason?: string }): NucleusError {
  if (err.code === 'HPE_HEADER_OVERFLOW')
    return new NucleusError(
      431,
      'headers_too_large',
      'the request line and headers are larger than this server reads (16 KiB); send fewer or shorter headers',
    );
  if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT')
    return new NucleusError(
      408,
      'request_timeout',
      'the request did not arrive in full in time (server.requestTimeoutMs)',
    );
  const why = err.reason ?? err.message;
  return new NucleusError(
    400,
    'malformed_request',
    `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'}${why ? `: ${why}` : ''}); check the method, the headers and the body framing`,
  );
}

/**
 * Answers a request Node's HTTP parser refused (a malformed request line or header, headers too large, a broken
 * chunk, an unknown method) with the JSON error body every other answer has, where Node would send a bare status.
 * Nothing is written once a response has begun on the connection; a connection the client reset gets nothing.
 */
export function answerClientError(err: NodeJS.ErrnoException, socket: Duplex & { bytesWritten?: number }): void {
  if (err.code === 'ECONNRESET' || !socket.writable || (socket.bytesWritten ?? 0) > 0) {
    socket.destroy();
    return;
  }
  endWith(socket, errorFor(err));
}

/** Answers a `CONNECT` request (which Node hands over as a raw tunnel, or drops unanswered): this is no proxy. */
export function answerConnect(_req: unknown, socket: Duplex): void {
  if (!socket.writable) return void socket.destroy();
  endWith(
    socket,
    new NucleusError(405, 'method_not_allowed', 'CONNECT is not allowed: this server is not a proxy', {
      headers: { allow: 'GET, POST, PUT, PATCH, DELETE' },
    }),
  );
}

function endWith(socket: Duplex, error: NucleusError): void {
  const body = JSON.stringify(error.toBody());
  const headers = Object.entries(error.headers).map(([k, v]) => `${k}: ${v}\r\n`);
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_TEXT[error.status]}\r\n` +
      'Content-Type: application/json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      headers.join('') +
      'Connection: close\r\n\r\n' +
      body,
  );
}
