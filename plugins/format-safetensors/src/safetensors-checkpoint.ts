import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import {
  readSafetensors,
  SafetensorsFormatError,
  type SafetensorsFile,
  type SafetensorsTensor,
} from './safetensors-reader.js';

/** The index transformers writes beside the shards of a large checkpoint. */
export const INDEX_FILE = 'model.safetensors.index.json';

/** The tensors of a checkpoint folder: one `.safetensors` file, or the shards its index names. */
export interface SafetensorsCheckpoint {
  dir: string;
  /** The files read, in the order the index (or the folder) names them. */
  files: SafetensorsFile[];
  /** Every tensor, with the file it is in. */
  tensors: Map<string, { file: SafetensorsFile; tensor: SafetensorsTensor }>;
}

/** The `.safetensors` files of a folder, by name. */
export function safetensorsFilesIn(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.safetensors'))
    .sort();
}

/**
 * Opens the weights of a checkpoint folder. With `model.safetensors.index.json`, the shards its `weight_map` names
 * (plain file names in the folder: a path that leaves it is refused), and each tensor must be in the shard the index
 * says; without one, every `.safetensors` file of the folder. A tensor found twice is refused.
 */
export function openCheckpoint(dir: string): SafetensorsCheckpoint {
  const indexPath = join(dir, INDEX_FILE);
  const tensors: SafetensorsCheckpoint['tensors'] = new Map();
  const files: SafetensorsFile[] = [];
  if (!existsSync(indexPath)) {
    const names = safetensorsFilesIn(dir);
    if (names.length === 0) throw new SafetensorsFormatError(dir, 'the folder holds no .safetensors file');
    for (const name of names) {
      const file = readSafetensors(join(dir, name));
      files.push(file);
      for (const tensor of file.tensors.values()) {
        const seen = tensors.get(tensor.name);
        if (seen)
          throw new SafetensorsFormatError(
            dir,
            `tensor ${tensor.name} is in both ${basename(seen.file.path)} and ${name}`,
          );
        tensors.set(tensor.name, { file, tensor });
      }
    }
    return { dir, files, tensors };
  }
  const fail = (message: string): never => {
    throw new SafetensorsFormatError(indexPath, message);
  };
  let index: unknown;
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (err) {
    fail(`not valid JSON (${(err as Error).message})`);
  }
  const map = (index as { weight_map?: unknown } | null)?.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail('has no weight_map object');
  const byShard = new Map<string, SafetensorsFile>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || basename(shard) !== shard || shard === '..' || shard === '.')
      fail(`weight_map puts ${name} in ${JSON.stringify(shard)}, which is not a file name in the folder`);
    let file = byShard.get(shard as string);
    if (!file) {
      const path = join(dir, shard as string);
      if (!existsSync(path)) fail(`weight_map names shard ${shard as string}, which is missing from the folder`);
      file = readSafetensors(path);
      byShard.set(shard as string, file);
      files.push(file);
    }
    const tensor = file.tensors.get(name);
    if (!tensor) fail(`weight_map puts ${name} in ${shard as string}, which does not hold it`);
    tensors.set(name, { file, tensor: tensor as SafetensorsTensor });
  }
  return { dir, files, tensors };
}
