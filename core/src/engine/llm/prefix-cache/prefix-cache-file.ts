import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';

/** What a prefix-cache file is made for: a cache restores only into the model and settings it was written by. */
export interface PrefixCacheFileIdentity {
  /** sha256 of the model's source file (or of its graph when the source is a folder). */
  modelSha256: string;
  /** sha256 of the ONNX graph that computed the KV (a rebuilt or requantized graph computes other numbers). */
  graphSha256: string;
  graphStyle: string;
  blockTokens: number;
}

interface Header extends PrefixCacheFileIdentity {
  format: number;
  payloadBytes: number;
  payloadSha256: string;
}

const MAGIC = Buffer.from('NXPCFILE');
const FORMAT = 1;

/**
 * A prefix cache on disk: a magic, a JSON header saying which model, graph and block size wrote it, with the length and
 * sha256 of the payload, then `PrefixCache.serialize()`'s bytes. Written to a temporary file that is renamed over the
 * old one, so a crash mid-write leaves the previous file or none, never half of one.
 */
export async function writePrefixCacheFile(
  path: string,
  identity: PrefixCacheFileIdentity,
  payload: Uint8Array,
): Promise<void> {
  const header: Header = {
    format: FORMAT,
    ...identity,
    payloadBytes: payload.byteLength,
    payloadSha256: createHash('sha256').update(payload).digest('hex'),
  };
  const json = Buffer.from(JSON.stringify(header));
  const length = Buffer.alloc(4);
  length.writeUInt32LE(json.byteLength);
  await mkdir(dirname(path), { recursive: true });
  const temporary = `${path}.${randomUUID()}.tmp`;
  try {
    const file = await open(temporary, 'w');
    try {
      await file.writev([MAGIC, length, json, payload]);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temporary, path);
  } catch (err) {
    await rm(temporary, { force: true });
    throw err;
  }
}

/** What reading a prefix-cache file gave: its payload, or why it is not used; `absent` when there is no file. */
export type PrefixCacheFileRead = { payload: Uint8Array } | { ignored: string } | { absent: true };

/**
 * Reads a file {@link writePrefixCacheFile} wrote, if it is there, and checks it: the magic, the header, the payload's
 * length and sha256, and that it was written for `expected` (model, graph, graph style, block size). A file that fails
 * a check is `ignored` with the reason, for the caller to log; it is never thrown.
 */
export function readPrefixCacheFile(path: string, expected: PrefixCacheFileIdentity): PrefixCacheFileRead {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { absent: true };
    return { ignored: `cannot read it: ${(err as Error).message}` };
  }
  if (bytes.byteLength < MAGIC.byteLength + 4 || !bytes.subarray(0, MAGIC.byteLength).equals(MAGIC))
    return { ignored: 'it is not a prefix-cache file (bad magic)' };
  const length = bytes.readUInt32LE(MAGIC.byteLength);
  const start = MAGIC.byteLength + 4 + length;
  let header: Header;
  try {
    if (start > bytes.byteLength) throw new Error('truncated');
    header = JSON.parse(bytes.subarray(MAGIC.byteLength + 4, start).toString('utf8')) as Header;
  } catch {
    return { ignored: 'its header is corrupt' };
  }
  if (header.format !== FORMAT) return { ignored: `its format ${header.format} is not ${FORMAT}` };
  for (const key of ['modelSha256', 'graphSha256', 'graphStyle', 'blockTokens'] as const) {
    if (header[key] !== expected[key])
      return {
        ignored: `it was written for ${key} ${String(header[key])}, and this model has ${String(expected[key])}`,
      };
  }
  const payload = bytes.subarray(start);
  if (payload.byteLength !== header.payloadBytes)
    return { ignored: `it is truncated (${payload.byteLength} of ${header.payloadBytes} payload bytes)` };
  if (createHash('sha256').update(payload).digest('hex') !== header.payloadSha256)
    return { ignored: 'its payload is corrupt (sha256 mismatch)' };
  return { payload };
}
