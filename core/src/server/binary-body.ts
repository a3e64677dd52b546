import { promisify } from 'node:util';
import { gunzip, inflate } from 'node:zlib';
import { badRequest, NucleusError } from '@nucleus/sdk';

/**
 * The request header of the KServe v2 binary tensor data extension: the body is a JSON inference header of this
 * many bytes followed by raw tensor bytes. The same header on a response says the same of its body.
 */
export const INFERENCE_HEADER_LENGTH = 'inference-header-content-length';

const gunzipAsync = promisify(gunzip);
const inflateAsync = promisify(inflate);

/** A body as its `Content-Encoding` says (identity, gzip or deflate), decompressed on the thread pool; 413 past `limit`. */
export async function decodeContent(bytes: Uint8Array, encoding: string, limit: number): Promise<Uint8Array> {
  const name = encoding.trim().toLowerCase();
  if (!name || name === 'identity') return bytes;
  const inflateWith =
    name === 'gzip' || name === 'x-gzip' ? gunzipAsync : name === 'deflate' ? inflateAsync : undefined;
  if (!inflateWith)
    throw new NucleusError(
      415,
      'unsupported_media_type',
      `request body has Content-Encoding '${encoding}'; this server reads identity, gzip and deflate`,
    );
  try {
    return await inflateWith(bytes, { maxOutputLength: limit });
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE')
      throw new NucleusError(
        413,
        'payload_too_large',
        `request body inflates to more than server.bodyLimitBytes (${limit} bytes)`,
      );
    throw badRequest('invalid_body', `request body is not valid ${name} data: ${(err as Error).message}`);
  }
}

/**
 * Splits a body at its `Inference-Header-Content-Length`: the JSON header and the binary data after it, both views
 * of `body` (no copy). 400 when the value is not a byte count or runs past the body.
 */
export function splitInferenceBody(body: Uint8Array, declared: string): { header: Uint8Array; binary: Uint8Array } {
  const value = declared.trim();
  const length = /^\d{1,15}$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(length)) {
    throw badRequest(
      'invalid_binary_header',
      `the Inference-Header-Content-Length header is '${declared}', which is not a byte count`,
    );
  }
  if (length > body.byteLength) {
    throw badRequest(
      'invalid_binary_header',
      `the Inference-Header-Content-Length header says the JSON inference header is ${length} bytes, but the whole body holds only ${body.byteLength}`,
    );
  }
  return { header: body.subarray(0, length), binary: body.subarray(length) };
}

const decoder = new TextDecoder();

/** Parses a small JSON inference header on the calling thread; 400 when it is not a JSON object. */
export function parseInferenceHeader(header: Uint8Array): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(header));
  } catch (err) {
    throw badRequest(
      'invalid_json',
      `the JSON inference header (the first Inference-Header-Content-Length bytes of the body) is not valid JSON: ${(err as Error).message}`,
    );
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw badRequest(
      'invalid_json',
      'the JSON inference header (the first Inference-Header-Content-Length bytes of the body) must be a JSON object',
    );
  }
  return value as Record<string, unknown>;
}
