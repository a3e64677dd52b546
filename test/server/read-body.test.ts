import { strict as assert } from 'node:assert';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { BodyTooLargeError, readBody } from '@nucleus/core/internal/server/json-offload';

// readBody on a stream standing in for the request: chunks arrive as the socket hands them over.
function request(chunks: Uint8Array[]): IncomingMessage {
  const stream = new PassThrough();
  setImmediate(() => {
    for (const c of chunks) stream.write(c);
    stream.end();
  });
  return stream as unknown as IncomingMessage;
}

const bytes = Uint8Array.from({ length: 50 }, (_, i) => i);
const chunks = [bytes.subarray(0, 7), bytes.subarray(7, 31), bytes.subarray(31)];

describe('request body reading', () => {
  it('reads a body with or without its length into one buffer, the byte at alignAt 8-byte aligned', async () => {
    for (const length of [50, undefined]) {
      for (const alignAt of [0, 13, 21]) {
        const body = await readBody(request(chunks), length, 1000, alignAt);
        assert.deepEqual(Array.from(body), Array.from(bytes));
        assert.equal((body.byteOffset + alignAt) % 8, 0, `length ${length}, alignAt ${alignAt}`);
        // Tensor bytes from there on can be viewed as 8-byte elements without a copy.
        assert.equal(new Float64Array(body.buffer, body.byteOffset + alignAt, 1).length, 1);
      }
    }
  });

  it('refuses bodies past the limit, and bodies longer or shorter than their length', async () => {
    await assert.rejects(readBody(request(chunks), 50, 40), BodyTooLargeError);
    await assert.rejects(readBody(request(chunks), undefined, 40), BodyTooLargeError);
    await assert.rejects(readBody(request(chunks), 45, 1000), /longer than its Content-Length/);
    await assert.rejects(readBody(request(chunks), 60, 1000), /shorter than its Content-Length/);
  });
});
