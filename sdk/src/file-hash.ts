import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { noProgress, type Progress } from './progress.js';

/** Hex SHA-256 of a file, streamed (model files can be gigabytes); `progress` counts the bytes read. */
export async function sha256File(path: string, progress: Progress = noProgress): Promise<string> {
  const hash = createHash('sha256');
  progress.start((await stat(path)).size, `hashing ${basename(path)}`, 'bytes');
  try {
    for await (const chunk of createReadStream(path, { highWaterMark: 1 << 22 })) {
      hash.update(chunk as Buffer);
      progress.advance((chunk as Buffer).byteLength);
    }
  } finally {
    progress.done();
  }
  return hash.digest('hex');
}
