import { createHash } from 'node:crypto';

/**
 * Where a request key falls in [0, 1) for one model: a hash, so the same user lands on the same variant on every
 * request and every server, with no table to keep; salted with the model name, so splits of different models are
 * independent.
 */
export function stickyBucket(model: string, key: string): number {
  const digest = createHash('sha256').update(model).update('\u0000').update(key).digest();
  // 48 bits are exact in a double.
  return digest.readUIntBE(0, 6) / 2 ** 48;
}
