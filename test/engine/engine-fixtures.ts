// Shared by the engine and KServe tests: the generated built-in models, small models written on the spot, a
// model repository on disk, a kernel with chosen models, and a direct ORT run to compare against.
import { createHash } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Nucleus } from '@nucleus/core';
import { ensureBuiltinModels, type EnsuredModel } from '@nucleus/plugin-builtin-models';
import { TEST_MODEL_CACHE } from '../helpers/llm.js';
import { REPO_ROOT } from '../helpers/paths.js';
import type { Tensor } from '@nucleus/sdk';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import * as ort from 'onnxruntime-node';

ort.env.logLevel = 'fatal';

/** A built-in model, generated once into the shared cache. */
export async function builtinModel(name: string): Promise<EnsuredModel> {
  const [model] = await ensureBuiltinModels(TEST_MODEL_CACHE, { names: [name] });
  return model!;
}

/** `y = x * factor` over `x: float32 [batch, 4]`: versions that tell themselves apart by their answers. */
export function scaleModel(factor: number): Uint8Array {
  const g = new GraphBuilder('scale');
  const x = g.input('x', 'float32', ['batch', 4]);
  const y = g.ops.mul(x, factor, { outputs: ['y'] });
  g.output(y, 'float32', ['batch', 4]);
  return g.toModel({ producer: 'nucleus-test' }).encode();
}

/** Hex SHA-256 of bytes. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Writes `<root>/<name>/<version>/model.onnx` + a model.json with the right sha256 (overridable). */
export function writeVersion(
  root: string,
  name: string,
  version: string,
  bytes: Uint8Array,
  manifest: Record<string, unknown> = {},
): string {
  const dir = join(root, name, version);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'model.onnx'), bytes);
  writeFileSync(
    join(dir, 'model.json'),
    JSON.stringify({ name, version, framework: 'onnx', sha256: sha256(bytes), ...manifest }, null, 2),
  );
  return dir;
}

/** A started kernel without plugin discovery, quiet, serving what `config` names. */
export async function startKernel(
  config: Record<string, unknown>,
  options: { builtinModels?: boolean | readonly string[]; before?: (k: Nucleus) => void; logLines?: string[] } = {},
): Promise<Nucleus> {
  const lines = options.logLines;
  const kernel = Nucleus.create({
    env: {},
    pluginFolders: [],
    nodeModules: [],
    builtinModels: options.builtinModels ?? false,
    ...(lines && { logDestination: { write: (line: string) => void lines.push(line) } }),
    cli: {
      'plugins.watch': false,
      'logging.level': lines ? 'debug' : 'silent',
      // The built-in models come from their plugin.
      ...(options.builtinModels && { 'plugins.dirs': [join(REPO_ROOT, 'plugins', 'builtin-models')] }),
      ...config,
    },
  });
  options.before?.(kernel);
  await kernel.start();
  return kernel;
}

/** Runs a model file once in a fresh ORT session on this thread, for reference numbers. */
export async function runDirect(modelPath: string, inputs: Record<string, Tensor>): Promise<Record<string, Tensor>> {
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'] });
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(inputs))
      feeds[name] = new ort.Tensor(t.dtype, t.data.slice() as never, t.shape);
    const result = await session.run(feeds);
    const out: Record<string, Tensor> = {};
    for (const [name, v] of Object.entries(result))
      out[name] = { dtype: v.type as Tensor['dtype'], shape: [...v.dims], data: (v.data as Float32Array).slice() };
    return out;
  } finally {
    await session.release();
  }
}

/** Deterministic float32 values in [-1, 1). */
export function floats(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

/** A float32 tensor. */
export function f32(data: ArrayLike<number>, shape: number[]): Tensor {
  return { dtype: 'float32', shape, data: Float32Array.from(data) };
}

/** An int64 tensor. */
export function i64(data: ArrayLike<number>, shape: number[]): Tensor {
  return { dtype: 'int64', shape, data: BigInt64Array.from(Array.from(data), (v) => BigInt(v)) };
}

/** Rejects when `promise` has not settled within `ms`, so a hang fails the test instead of timing it out silently. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>(
        (_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms)),
      ),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
