import { constants, existsSync } from 'node:fs';
import { access, statfs } from 'node:fs/promises';
import { freemem, totalmem } from 'node:os';
import { dirname, resolve } from 'node:path';
import { ModelLocator } from '../engine/model-locator.js';
import { GraphBuilder } from '@nucleus/sdk/onnx';
import semver from 'semver';
import { declaredBackends, unknownBackendError } from '../engine/declared-backends.js';
import { defaultModelCacheDir } from '../engine/model-cache-dir.js';
import { ConfigError, describeSource, type ConfigStore } from '../kernel/config/index.js';
import { Kernel, type KernelOptions } from '../kernel/kernel.js';
import { validatePluginDir } from '../kernel/plugin-validation.js';
import { ListenError, probeListen } from '../server/listen-error.js';

/** How one check came out: `fail` stops `nucleus serve` (or will), `warn` may hurt later. */
export type CheckStatus = 'ok' | 'warn' | 'fail';

/** One line of `nucleus doctor`. */
export interface CheckResult {
  name: string;
  status: CheckStatus;
  /** What was found. */
  message: string;
  /** What to do about it, when it is not ok. */
  fix?: string;
}

/** Thresholds and inputs of the checks; the defaults are what `nucleus doctor` uses. */
export interface DoctorOptions extends Pick<KernelOptions, 'file' | 'env' | 'cli'> {
  /** Node.js releases Nucleus runs on (the `engines` range of the project). */
  nodeRange?: string;
  nodeVersion?: string;
  freeMemoryBytes?: () => number;
  /** Below this much free memory: fail; below `warnMemoryBytes`: warn. */
  failMemoryBytes?: number;
  warnMemoryBytes?: number;
  failDiskBytes?: number;
  warnDiskBytes?: number;
}

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const gib = (bytes: number): string => `${(bytes / GiB).toFixed(1)} GiB`;

/** Runs every check, in an order where an earlier failure explains a later one. */
export async function runDoctor(options: DoctorOptions = {}): Promise<CheckResult[]> {
  const results: CheckResult[] = [
    checkNode(options.nodeRange ?? '>=20.10', options.nodeVersion ?? process.versions.node),
  ];
  results.push(await checkOnnxRuntime());
  results.push(
    checkMemory(
      options.freeMemoryBytes?.() ?? freemem(),
      options.failMemoryBytes ?? 256 * MiB,
      options.warnMemoryBytes ?? 2 * GiB,
    ),
  );
  let kernel: Kernel | undefined;
  // The warnings a start would log (an env var that sets nothing, a section of an unknown plugin) become the check's.
  const warnings: string[] = [];
  const logDestination = { write: (line: string) => void warnings.push(logMessage(line)) };
  try {
    kernel = Kernel.create({ file: options.file, env: options.env, cli: options.cli, logDestination });
    const origin = `valid (${configOrigin(kernel.config)})`;
    results.push(
      warnings.length === 0
        ? { name: 'config', status: 'ok', message: origin }
        : {
            name: 'config',
            status: 'warn',
            message: [origin, ...warnings.map((w) => `- ${w}`)].join('\n'),
            fix: 'remove or correct what the warnings name',
          },
    );
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    results.push({
      name: 'config',
      status: 'fail',
      message:
        err.issues.length === 1
          ? err.issues[0]!.message
          : `${err.issues.length} problems:\n${err.issues.map((i) => `- ${i.message}`).join('\n')}`,
      fix:
        'change the keys named, where the message says they were set; `nucleus config schema --markdown` lists ' +
        'every key',
    });
  }
  const cacheDir = kernel?.config.get('cache.dir') ?? defaultModelCacheDir();
  results.push(await checkDisk(cacheDir, options.failDiskBytes ?? 512 * MiB, options.warnDiskBytes ?? 5 * GiB));
  if (kernel === undefined) {
    const skipped = 'not checked: the config is invalid';
    for (const name of ['port', 'plugins', 'models'])
      results.push({ name, status: 'warn', message: skipped, fix: 'fix the config first' });
    return results;
  }
  results.push(await checkPort(kernel.config));
  results.push(await checkPlugins(kernel));
  results.push(checkModels(kernel.config));
  return results;
}

/** The Node.js version against the range Nucleus needs. */
export function checkNode(range: string, version: string): CheckResult {
  if (semver.satisfies(version, range))
    return { name: 'node', status: 'ok', message: `v${version} (Nucleus needs ${range})` };
  return {
    name: 'node',
    status: 'fail',
    message: `v${version} is outside ${range}`,
    fix: `install a Node.js release in ${range} (nodejs.org, or nvm install 20)`,
  };
}

/** onnxruntime-node loads, lists its execution providers and runs a one-node graph. */
export async function checkOnnxRuntime(): Promise<CheckResult> {
  const name = 'onnxruntime';
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (err) {
    return {
      name,
      status: 'fail',
      message: `onnxruntime-node does not load: ${(err as Error).message}`,
      fix: 'run `npm ci` again; the CPU binaries ship inside the package, so no download is needed',
    };
  }
  const backends = ort.listSupportedBackends();
  const bundled = backends.filter((b) => b.bundled).map((b) => b.name);
  const absent = backends.filter((b) => !b.bundled).map((b) => b.name);
  const providers = `providers: ${bundled.join(', ')}${absent.length > 0 ? `; not installed: ${absent.join(', ')}` : ''}`;
  try {
    const g = new GraphBuilder('doctor');
    const x = g.input('x', 'float32', [2]);
    g.output(g.ops.add(x, x), 'float32', [2], { name: 'y' });
    ort.env.logLevel = 'fatal';
    const session = await ort.InferenceSession.create(g.toModel().encode(), { executionProviders: ['cpu'] });
    const { y } = await session.run({ x: new ort.Tensor('float32', Float32Array.from([1, 2]), [2]) });
    await session.release();
    const data = y?.data as Float32Array | undefined;
    if (data?.[0] !== 2 || data[1] !== 4) throw new Error(`a test graph computed ${String(data)} instead of 2,4`);
  } catch (err) {
    return {
      name,
      status: 'fail',
      message: `onnxruntime-node ${ort.env.versions.node} loads but cannot run a graph: ${(err as Error).message}`,
      fix: 'reinstall with `npm ci`',
    };
  }
  const gpuHint = absent.includes('cuda') ? ' (NVIDIA GPUs: see "Backends" in the README)' : '';
  return {
    name,
    status: 'ok',
    message: `onnxruntime-node ${ort.env.versions.node} runs a test graph; ${providers}${gpuHint}`,
  };
}

/** Free memory (MemAvailable on Linux) against what loading a model takes. */
export function checkMemory(free: number, failBelow: number, warnBelow: number): CheckResult {
  const message = `${gib(free)} free of ${gib(totalmem())}`;
  if (free < failBelow)
    return {
      name: 'memory',
      status: 'fail',
      message,
      fix: `free memory (stop other processes): models need at least ${gib(failBelow)} to open`,
    };
  if (free < warnBelow)
    return {
      name: 'memory',
      status: 'warn',
      message,
      fix:
        'large models may fail to load with 507 insufficient_memory; serve smaller or quantized ones ' +
        '(models[].quantize: int8)',
    };
  return { name: 'memory', status: 'ok', message };
}

/** Free disk and write access where generated and rewritten models are cached. */
export async function checkDisk(dir: string, failBelow: number, warnBelow: number): Promise<CheckResult> {
  let existing = resolve(dir);
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  const fix = `set cache.dir (env NUCLEUS_CACHE_DIR) to a folder on a disk with room`;
  try {
    await access(existing, constants.W_OK);
  } catch {
    return { name: 'disk', status: 'fail', message: `model cache ${dir}: ${existing} is not writable`, fix };
  }
  const stats = await statfs(existing);
  const free = stats.bavail * stats.bsize;
  const message = `${gib(free)} free for the model cache ${dir}`;
  if (free < failBelow) return { name: 'disk', status: 'fail', message, fix };
  if (free < warnBelow)
    return { name: 'disk', status: 'warn', message, fix: `graphs built from large models may not fit; ${fix}` };
  return { name: 'disk', status: 'ok', message };
}

/** `server.host`:`server.port` can be listened on now. */
export async function checkPort(config: ConfigStore): Promise<CheckResult> {
  const host = config.get('server.host');
  const port = config.get('server.port');
  try {
    await probeListen(host, port);
    return {
      name: 'port',
      status: 'ok',
      message: port === 0 ? `${host}: port 0 picks a free port` : `${host}:${port} is free`,
    };
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    // The message is "<what>; <what to do>".
    const cut = err.message.indexOf('; ');
    return cut < 0
      ? { name: 'port', status: 'fail', message: err.message }
      : {
          name: 'port',
          status: 'fail',
          message: `${host}:${port}: ${err.message.slice(0, cut)}`,
          fix: err.message.slice(cut + 2),
        };
  }
}

/** Every enabled plugin resolves (kernel API, dependencies) and its entry imports; `backend` names an installed one. */
export async function checkPlugins(kernel: Kernel): Promise<CheckResult> {
  kernel.plugins.resolve();
  const plugins = kernel.plugins.list();
  const problems: string[] = [];
  for (const p of plugins) {
    if (p.state === 'failed') problems.push(`${p.id}: ${p.error ?? 'failed'}`);
    if (p.state !== 'resolved') continue;
    const validation = await validatePluginDir(p.dir);
    for (const problem of validation.problems) problems.push(`${p.id}: ${problem}`);
  }
  const resolved = plugins.filter((p) => p.state === 'resolved');
  const unknown = unknownBackendError(kernel.config, declaredBackends(resolved, []));
  if (unknown) problems.push(...unknown.issues.map((issue) => issue.message));
  const active = plugins.filter((p) => p.state === 'resolved').length;
  const inactive = plugins.filter((p) => p.state === 'inactive').length;
  const summary = `${active} valid${inactive > 0 ? `, ${inactive} disabled` : ''}`;
  if (problems.length === 0) return { name: 'plugins', status: 'ok', message: summary };
  return {
    name: 'plugins',
    status: 'fail',
    message: `${summary}; ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n${problems.map((p) => `- ${p}`).join('\n')}`,
    fix:
      'build a plugin that is not built (npm run build), or disable it with plugins.disabled; ' +
      '`nucleus plugins validate <dir>` checks one',
  };
}

/** Each configured model's path exists. */
export function checkModels(config: ConfigStore): CheckResult {
  const models = config.get('models');
  if (models.length === 0)
    return { name: 'models', status: 'ok', message: 'none configured: the built-in models will be served' };
  // A source with a scheme (`hf://…`) is fetched at start by the plugin that handles it; only local paths are checked.
  const local = models.filter((m) => ModelLocator.schemeOf(m.path) === undefined);
  const missing = local.filter((m) => !existsSync(m.path));
  if (missing.length === 0) {
    const fetched = models.length - local.length;
    return {
      name: 'models',
      status: 'ok',
      message: `${models.length} configured, every local path exists${fetched ? ` (${fetched} fetched at start)` : ''}`,
    };
  }
  const required = missing.some((m) => m.optional !== true);
  return {
    name: 'models',
    status: required ? 'fail' : 'warn',
    message: missing.map((m) => `model '${m.name}': ${m.path} does not exist`).join('\n'),
    fix:
      "correct models[].path (relative paths in a config file are read from the file's folder), or mark the model " +
      'optional: true',
  };
}

// "defaults", or the file and the variables that set something.
function configOrigin(config: ConfigStore): string {
  const kinds = new Set<string>();
  for (const source of config.sources().values())
    if (source.kind !== 'default')
      kinds.add(
        source.kind === 'file'
          ? describeSource({ kind: 'file', name: source.name })
          : source.kind === 'cli'
            ? 'command line'
            : source.kind,
      );
  return kinds.size === 0 ? 'defaults only' : `defaults + ${[...kinds].join(' + ')}`;
}

// A log line's message: the `msg` of a JSON line, or the line itself when the config asks for pretty logs.
function logMessage(line: string): string {
  try {
    return String((JSON.parse(line) as { msg?: unknown }).msg ?? line.trim());
  } catch {
    return line.trim();
  }
}
