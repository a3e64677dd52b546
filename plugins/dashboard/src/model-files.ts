import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

// A folder source (an HF or ONNX folder) is summed this deep and this wide at most: a source that points at a large
// tree costs a bounded walk, and its figure is then a lower bound.
const MAX_DEPTH = 3;
const MAX_ENTRIES = 10_000;

/**
 * The bytes of a model version's files on disk: a file, with its ONNX external-data file beside it when it has one
 * (`model.onnx.data`, `model.onnx_data`), or every file of a folder. This is what its weights and graph weigh as
 * stored, which each replica loads once; it is not the process's memory (a quantized GGUF file, for one, is
 * dequantized in part when its graph is built). Figures are kept per path and modification time.
 */
export class ModelFiles {
  private readonly known = new Map<string, { mtimeMs: number; bytes: number }>();

  /** The bytes at `source`, or undefined where there is no local file (a URI, a path gone since). */
  async bytes(source: string | undefined): Promise<number | undefined> {
    if (source === undefined || /^[a-z][a-z0-9+.-]*:\/\//i.test(source)) return undefined;
    const found = await stat(source).catch(() => undefined);
    if (!found) return undefined;
    const cached = this.known.get(source);
    if (cached?.mtimeMs === found.mtimeMs) return cached.bytes;
    const bytes = found.isDirectory() ? await folderBytes(source) : found.size + (await externalDataBytes(source));
    // Sources come and go with swaps; the figures of paths no longer listed are not worth keeping for long.
    if (this.known.size >= 1000) this.known.clear();
    this.known.set(source, { mtimeMs: found.mtimeMs, bytes });
    return bytes;
  }
}

async function externalDataBytes(file: string): Promise<number> {
  if (!file.endsWith('.onnx')) return 0;
  let total = 0;
  for (const name of [`${basename(file)}.data`, `${basename(file)}_data`]) {
    const data = await stat(join(dirname(file), name)).catch(() => undefined);
    if (data?.isFile()) total += data.size;
  }
  return total;
}

async function folderBytes(root: string): Promise<number> {
  let total = 0;
  let seen = 0;
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (++seen > MAX_ENTRIES) return;
      const path = join(dir, entry.name);
      if (entry.isDirectory()) {
        if (depth < MAX_DEPTH) await walk(path, depth + 1);
        continue;
      }
      // A file or a link to one (model repositories may link versions' files); linked folders are not followed.
      const file = await stat(path).catch(() => undefined);
      if (file?.isFile()) total += file.size;
    }
  };
  await walk(root, 1);
  return total;
}
