import { connect } from 'node:net';

/** What came back for one raw request. */
export type RawAnswer =
  | { kind: 'answer'; status: number; headers: Record<string, string>; body: Buffer }
  | { kind: 'no answer' | 'hang'; detail: string }
  /**
   * The server closed the connection while the body was still being written, and the reset took the answer with
   * it: what a server that answers early (401, 413) and closes may do to a client that keeps writing.
   */
  | { kind: 'reset while sending'; detail: string };

/** One raw HTTP/1.1 exchange: the head as written, then the body in pieces, each after an optional pause. */
export interface RawRequest {
  head: string | Buffer;
  body?: Buffer;
  /** Sends the body in this many pieces, pausing `pauseMs` before each. */
  pieces?: number;
  pauseMs?: number;
  /** Stops after this many body bytes and closes the socket: the client gives up, so no answer is owed. */
  abandonAfter?: number;
}

/**
 * Sends bytes that an HTTP client library would refuse to write (odd methods, broken headers, bad encodings) over a
 * plain socket and reads the answer until the server closes the connection (requests ask for `Connection: close`).
 * Writing stops once an answer has begun, so an early refusal is read rather than lost to a reset.
 */
export function sendRaw(port: number, request: RawRequest, timeoutMs: number): Promise<RawAnswer> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let settled = false;
    let sending = false;
    const finish = (answer: RawAnswer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(
      () => finish({ kind: 'hang', detail: `no complete answer in ${timeoutMs} ms` }),
      timeoutMs,
    );
    const parsed = () => parseAnswer(Buffer.concat(chunks));
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      const answer = parsed();
      if (answer?.complete) finish(answer.answer);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const answer = parsed();
      if (answer) finish(answer.answer);
      else if (sending && (err.code === 'EPIPE' || err.code === 'ECONNRESET'))
        finish({ kind: 'reset while sending', detail: err.code });
      else finish({ kind: 'no answer', detail: err.code ?? err.message });
    });
    socket.on('close', () => {
      const answer = parsed();
      if (answer) finish(answer.answer);
      else finish({ kind: 'no answer', detail: 'connection closed with no answer' });
    });
    socket.on('connect', async () => {
      socket.write(request.head);
      const body = request.body ?? Buffer.alloc(0);
      const end = request.abandonAfter ?? body.length;
      const pieces = Math.max(1, request.pieces ?? 1);
      const size = Math.ceil(end / pieces) || 1;
      sending = end > 0;
      for (let at = 0; at < end && !settled && chunks.length === 0; at += size) {
        if (request.pauseMs) await new Promise((r) => setTimeout(r, request.pauseMs));
        if (settled || chunks.length > 0 || socket.destroyed) return;
        if (!socket.write(body.subarray(at, Math.min(end, at + size))))
          await new Promise<void>((r) => {
            socket.once('drain', r);
            socket.once('close', r);
          });
      }
      sending = false;
      if (request.abandonAfter !== undefined) finish({ kind: 'no answer', detail: 'abandoned by the client' });
    });
  });
}

// A complete answer once the body its headers announce (Content-Length, chunked, or until close) is all here.
function parseAnswer(bytes: Buffer): { answer: RawAnswer; complete: boolean } | undefined {
  const end = bytes.indexOf('\r\n\r\n');
  if (end < 0) return undefined;
  const lines = bytes.subarray(0, end).toString('latin1').split('\r\n');
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '')?.[1]);
  if (!Number.isInteger(status)) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  const rest = bytes.subarray(end + 4);
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const { body, complete } = dechunk(rest);
    return { answer: { kind: 'answer', status, headers, body }, complete };
  }
  const length = headers['content-length'] === undefined ? undefined : Number(headers['content-length']);
  const body = length === undefined ? rest : rest.subarray(0, length);
  const complete = length !== undefined && rest.length >= length;
  return { answer: { kind: 'answer', status, headers, body }, complete };
}

function dechunk(bytes: Buffer): { body: Buffer; complete: boolean } {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const eol = bytes.indexOf('\r\n', at);
    if (eol < 0) return { body: Buffer.concat(parts), complete: false };
    const size = Number.parseInt(bytes.subarray(at, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) return { body: Buffer.concat(parts), complete: false };
    if (size === 0) return { body: Buffer.concat(parts), complete: true };
    parts.push(bytes.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
    if (at > bytes.length) return { body: Buffer.concat(parts), complete: false };
  }
}
