import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bertTiny } from './bert-tiny.js';
import type { BuiltinModelGenerator, BuiltinModelMetadata } from './builtin-model.js';
import { mlpClassifier } from './mlp-classifier.js';
import { multiIoModel } from './multi-io-model.js';
import { resnetTiny } from './resnet-tiny.js';
import { tabularClassifier } from './tabular-classifier.js';

/** Every built-in model generator, by name. */
export const BUILTIN_MODELS: readonly BuiltinModelGenerator[] = [
  mlpClassifier,
  multiIoModel,
  resnetTiny,
  tabularClassifier,
  bertTiny,
];

/** The model.json written next to each built-in model.onnx. */
export interface BuiltinModelManifest extends BuiltinModelMetadata {
  framework: 'onnx';
  /** Hex SHA-256 of model.onnx. */
  sha256: string;
  /** Which generator revision wrote it; a different revision is rebuilt. */
  builtin: { revision: number };
}

/** Where one built-in model lives on disk after `ensureBuiltinModels`. */
export interface EnsuredModel {
  name: string;
  version: number;
  /** `<cacheDir>/<name>/<version>`. */
  dir: string;
  modelPath: string;
  manifestPath: string;
  /** True when this call generated the files, false when valid ones were already there. */
  created: boolean;
  manifest: BuiltinModelManifest;
}

/**
 * Writes each built-in model as `<cacheDir>/<name>/<version>/model.onnx` + `model.json`, generating only those
 * that are missing, stale (older generator revision) or corrupt (hash mismatch). Safe to call from several
 * processes at once: files appear by rename, and every writer writes identical bytes.
 */
export async function ensureBuiltinModels(
  cacheDir: string,
  options: { names?: readonly string[] } = {},
): Promise<EnsuredModel[]> {
  const wanted = options.names ? BUILTIN_MODELS.filter((m) => options.names!.includes(m.name)) : BUILTIN_MODELS;
  if (options.names) {
    const unknown = options.names.filter((n) => !BUILTIN_MODELS.some((m) => m.name === n));
    if (unknown.length > 0) throw new Error(`unknown built-in model(s): ${unknown.join(', ')}`);
  }
  const out: EnsuredModel[] = [];
  for (const generator of wanted) out.push(await ensureOne(cacheDir, generator));
  return out;
}

async function ensureOne(cacheDir: string, generator: BuiltinModelGenerator): Promise<EnsuredModel> {
  const existing = await readValid(cacheDir, generator);
  if (existing) return existing;

  const { bytes, metadata } = generator.build();
  const dir = join(cacheDir, metadata.name, String(metadata.version));
  const modelPath = join(dir, 'model.onnx');
  const manifestPath = join(dir, 'model.json');
  const manifest: BuiltinModelManifest = {
    ...metadata,
    framework: 'onnx',
    sha256: sha256(bytes),
    builtin: { revision: generator.revision },
  };
  await mkdir(dir, { recursive: true });
  const tmp = `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  // model.json goes last: its presence with a matching hash is what marks the pair complete.
  await writeFile(modelPath + tmp, bytes);
  await rename(modelPath + tmp, modelPath);
  await writeFile(manifestPath + tmp, `${JSON.stringify(manifest, null, 2)}\n`);
  await rename(manifestPath + tmp, manifestPath);
  return { name: metadata.name, version: metadata.version, dir, modelPath, manifestPath, created: true, manifest };
}

async function readValid(cacheDir: string, generator: BuiltinModelGenerator): Promise<EnsuredModel | undefined> {
  const base = join(cacheDir, generator.name);
  // The version is in the manifest; built-ins are all version 1 today, so look there.
  const dir = join(base, '1');
  const modelPath = join(dir, 'model.onnx');
  const manifestPath = join(dir, 'model.json');
  try {
    const manifest = JSON.parse(await readFile(manifestPath, 'utf8')) as BuiltinModelManifest;
    if (manifest.builtin?.revision !== generator.revision) return undefined;
    if (sha256(await readFile(modelPath)) !== manifest.sha256) return undefined;
    return { name: manifest.name, version: manifest.version, dir, modelPath, manifestPath, created: false, manifest };
  } catch {
    return undefined;
  }
}

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
