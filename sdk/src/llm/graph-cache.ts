import { mkdir, readFile, realpath, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sha256File } from '../file-hash.js';
import { saveModel, type OnnxModel } from '../onnx/index.js';
import { noProgress, type Progress } from '../progress.js';

/**
 * `sha256File`, remembered in `<cacheDir>/sha256-index.json` by real path, size and mtime, so a large model is hashed
 * once rather than on every load; `progress` counts the bytes of a hash that is not remembered.
 */
export async function sha256FileCached(
  path: string,
  cacheDir: string,
  progress: Progress = noProgress,
): Promise<string> {
  const indexPath = join(cacheDir, 'sha256-index.json');
  const real = await realpath(path);
  const info = await stat(real);
  const stamp = `${info.size}:${info.mtimeMs}`;
  let index: Record<string, { stamp: string; sha256: string }> = {};
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8')) as typeof index;
  } catch {
    // No index yet, or a torn one: start afresh.
  }
  const hit = index[real];
  if (hit?.stamp === stamp) return hit.sha256;
  const sha256 = await sha256File(real, progress);
  index[real] = { stamp, sha256 };
  await mkdir(cacheDir, { recursive: true });
  const tmp = `${indexPath}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  await writeFile(tmp, `${JSON.stringify(index, null, 2)}\n`);
  await rename(tmp, indexPath);
  return sha256;
}

// Above this much weight data, tensors go to an external file next to the graph: ONNX protobufs stop at 2 GiB, and
// ONNX Runtime maps external data where it would copy inline tensors out of the parsed protobuf (a 666 MB graph:
// 933 MB resident with its session instead of 1131 MB).
const EXTERNAL_DATA_ABOVE_BYTES = 256 << 20;

/**
 * The path of a graph Nucleus generated from a model file, cached as `<cacheDir>/<kind>/<key>/model.onnx`: built by
 * `build` on the first call, reused after. The folder appears by rename, so concurrent loaders never read half a file.
 */
export async function ensureGeneratedGraph(
  cacheDir: string,
  kind: string,
  key: string,
  build: () => OnnxModel | Promise<OnnxModel>,
): Promise<{ path: string; created: boolean }> {
  const dir = join(cacheDir, kind, key);
  const path = join(dir, 'model.onnx');
  const isComplete = async (): Promise<boolean> => {
    try {
      return (JSON.parse(await readFile(join(dir, 'complete.json'), 'utf8')) as { key?: string }).key === key;
    } catch {
      return false;
    }
  };
  if (await isComplete()) return { path, created: false };
  const model = await build();
  const weightBytes = model.graph.initializers.reduce(
    (n, t) => n + ((t.data as { byteLength?: number }).byteLength ?? 0),
    0,
  );
  const tmp = `${dir}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await mkdir(tmp, { recursive: true });
    await saveModel(
      join(tmp, 'model.onnx'),
      model,
      weightBytes > EXTERNAL_DATA_ABOVE_BYTES ? { externalDataThresholdBytes: 1024 } : {},
    );
    await writeFile(join(tmp, 'complete.json'), `${JSON.stringify({ key, createdAt: new Date().toISOString() })}\n`);
    try {
      await rename(tmp, dir);
    } catch (err) {
      // A concurrent loader put the same folder in place first: theirs is as good as ours. Anything else is stale.
      if (await isComplete()) return { path, created: false };
      await rm(dir, { recursive: true, force: true });
      await rename(tmp, dir).catch(() => {
        throw err;
      });
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { path, created: true };
}
