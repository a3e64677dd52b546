import { closeSync, openSync, writeSync } from 'node:fs';

/** One tensor to write: its raw little-endian bytes in `dtype`. */
export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  data: Uint8Array;
}

/**
 * Writes a safetensors file: the header (padded with spaces to 8 bytes, as the safetensors crate writes it), then
 * each tensor's bytes in the order given. For fixtures and tools; the bytes are not checked against the shapes.
 */
export function writeSafetensors(
  path: string,
  entries: readonly SafetensorsEntry[],
  metadata?: Record<string, string>,
): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  let offset = 0;
  for (const e of entries) {
    header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [offset, offset + e.data.byteLength] };
    offset += e.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, length);
    writeSync(fd, Buffer.from(json, 'utf8'));
    for (const e of entries) writeSync(fd, e.data);
  } finally {
    closeSync(fd);
  }
}
