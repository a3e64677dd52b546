import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { PassThrough } from 'node:stream';
import { BodyTooLargeError, JsonParserPool, readBody } from '@nucleus/core/internal/server/json-offload';
import { ReadBudget } from '@nucleus/core/internal/server/read-budget';

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

describe('request body reading, a share of bytes per turn of the event loop', () => {
  const image = Uint8Array.from({ length: 512 * 1024 }, (_, i) => (i * 7) % 251);
  const pieces = (bytes: Uint8Array, size: number) =>
    Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) => bytes.subarray(i * size, (i + 1) * size));

  // Reads two bodies at once, as two sockets deliver them, and counts the turns of the event loop they took.
  async function readTwo(budget: ReadBudget): Promise<{ bodies: Uint8Array[]; turns: number }> {
    let turns = 0;
    let reading = true;
    const tick = (): void => {
      if (!reading) return;
      turns++;
      setImmediate(tick);
    };
    setImmediate(tick);
    const bodies = await Promise.all([
      readBody(request(pieces(image, 16 * 1024)), image.length, 1 << 20, 0, budget),
      readBody(request(pieces(image, 16 * 1024)), undefined, 1 << 20, 5, budget),
    ]);
    reading = false;
    return { bodies, turns };
  }

  it('reads bodies larger than a turn’s share over several turns, whole and in order', async () => {
    const { bodies, turns } = await readTwo(new ReadBudget(64 * 1024));
    for (const body of bodies) assert.deepEqual(Buffer.from(body), Buffer.from(image));
    // 1 MiB at 64 KiB a turn: other work (other sockets, /health) ran in between at least 15 times.
    assert.ok(turns >= 15, `read in ${turns} turns`);
    // With a share larger than both bodies, the same reads take a turn or two: the count above is the budget's doing.
    const { turns: unbounded } = await readTwo(new ReadBudget(4 << 20));
    assert.ok(unbounded <= 3, `unbounded: ${unbounded} turns`);
  });
});

describe('the JSON parser threads', () => {
  // Linux reports each thread's niceness (field 19 of /proc/self/task/<tid>/stat); elsewhere there is nothing to read.
  const nicenessOfThreads = (): number[] =>
    readdirSync('/proc/self/task').map((tid) => {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    });

  it('parse at the niceness they are given, so the event loop wins the cores from them', async function () {
    if (!existsSync('/proc/self/task')) this.skip();
    const pool = new JsonParserPool(1, 13);
    try {
      const body = new TextEncoder().encode(
        JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [3], data: [1, 2, 3] }] }),
      );
      const parsed = (await pool.parse(body, true, 64)) as { inputs: { data: Float32Array }[] };
      assert.deepEqual([...parsed.inputs[0]!.data], [1, 2, 3]);
      assert.ok(nicenessOfThreads().includes(13), `threads at ${nicenessOfThreads().join(', ')}`);
    } finally {
      await pool.close();
    }
  });
});
