import { readdirSync, readFileSync } from 'node:fs';
import { mkdir, stat, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import { Command } from 'commander';
import { ExtensionPoints, NucleusError, type ModelTransformContext } from '@nucleus/sdk';
import { loadModel, OnnxModel, saveModel } from '@nucleus/sdk/onnx';
import { loadTokenizer } from '@nucleus/sdk/llm';
import { defaultModelCacheDir } from '../engine/model-cache-dir.js';
import { ModelFormats } from '../engine/model-formats.js';
import { findTransform } from '../engine/model-transforms.js';
import { Kernel } from '../kernel/kernel.js';
import { flushLogger } from '../kernel/logger.js';
import { ProgressReporter } from '../kernel/progress-reporter.js';
import { collect, setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { UsageError } from './exit-codes.js';
import { compareLlms, compareTensorModels, type LlmAccuracy, type TensorAccuracy } from './quantize-evaluation.js';

interface QuantizeOptions extends ConfigOptions {
  method: string;
  out: string;
  calibration?: string;
  calibrator?: string;
  option: string[];
  eval?: string;
  text?: string;
  json?: boolean;
}

/** What `nucleus quantize` writes to `<out>/report.json` and prints. */
export interface QuantizeReportFile {
  model: string;
  method: string;
  options: Record<string, unknown>;
  summary: string;
  sizeBytes: { float: number; quantized: number; ratio: number };
  accuracy: TensorAccuracy | LlmAccuracy;
  /** Float seconds over quantized seconds on the same runs (above 1: the quantized model is faster). */
  speedRatio: number;
}

// `--option key=value`: numbers and booleans as such, lists split at commas for include/exclude.
function parseOption(pair: string): [string, unknown] {
  const at = pair.indexOf('=');
  if (at <= 0) throw new UsageError(`--option ${pair}: expected key=value`);
  const key = pair.slice(0, at);
  const raw = pair.slice(at + 1);
  if (key === 'include' || key === 'exclude') return [key, raw.split(',').filter(Boolean)];
  if (raw === 'true' || raw === 'false') return [key, raw === 'true'];
  return [key, raw !== '' && Number.isFinite(Number(raw)) ? Number(raw) : raw];
}

/** `nucleus quantize MODEL --method M --out DIR`: writes the quantized ONNX, a model.json and an accuracy report. */
export function quantizeCommand(): Command {
  return withConfigOptions(new Command('quantize'))
    .argument('<model>', 'an ONNX file or folder, or any model a format plugin loads')
    .description(
      'quantize a model with a modelTransform (plugin quant-int8) and report its accuracy against the float model',
    )
    .requiredOption(
      '-m, --method <name>',
      'int8, int4, int8-dq, fp16, dynamic or static (the transforms active plugins offer)',
    )
    .requiredOption('-o, --out <dir>', 'folder for model.onnx, model.json and report.json')
    .option('--calibration <path>', 'static: sample inputs (JSONL, or a folder of .json/.npy) to calibrate on')
    .option('--calibrator <kind>', 'static: minmax, percentile or entropy')
    .option('--option <key=value>', 'another setting of the method, e.g. blockSize=128 (repeatable)', collect, [])
    .option('--eval <file>', 'tensor models: held-out inputs (JSONL, input name → nested array) for the report')
    .option('--text <file>', 'LLMs: a text for perplexity and greedy agreement')
    .option('--json', 'print the report as JSON')
    .action(async (source: string, opts: QuantizeOptions) => {
      const kernel = Kernel.create({
        file: opts.config,
        cli: { 'logging.level': 'warn', ...setOverrides(opts) },
        serving: false,
      });
      await kernel.plugins.start();
      try {
        const report = await quantize(kernel, source, opts);
        process.stdout.write(opts.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, opts.out));
      } catch (err) {
        if (err instanceof NucleusError && err.status < 500) throw new UsageError(err.message);
        throw err;
      } finally {
        await kernel.plugins.stop();
        await flushLogger(kernel.logger);
      }
    });
}

async function quantize(kernel: Kernel, source: string, opts: QuantizeOptions): Promise<QuantizeReportFile> {
  const transforms = kernel.extensions.point(ExtensionPoints.modelTransform);
  const name = basename(source, extname(source));
  const contribution = findTransform(transforms, opts.method, name);
  const options: Record<string, unknown> = Object.fromEntries(opts.option.map(parseOption));
  if (opts.calibration !== undefined) options.calibration = opts.calibration;
  if (opts.calibrator !== undefined) options.calibrator = opts.calibrator;
  const cacheDir = kernel.config.get('cache.dir') ?? defaultModelCacheDir();
  const formats = new ModelFormats(kernel.extensions.point(ExtensionPoints.modelFormat), kernel.logger);
  const resolved = await formats.resolve(source);
  const reporter = new ProgressReporter({ logger: kernel.logger });
  let floatPath: string;
  let llm: Awaited<ReturnType<ModelFormats['loadLlm']>> | undefined;
  if (resolved.match.kind === 'llm') {
    if (!opts.text) throw new UsageError(`${source} is a language model: give a text for the report with --text FILE`);
    // The generic graph: standard attention, one prefill of the whole text gives every position's logits.
    llm = await formats.loadLlm(resolved, {
      name,
      cacheDir,
      graphStyle: 'generic',
      options: {},
      logger: kernel.logger,
    });
    floatPath = llm.onnxPath;
  } else {
    floatPath = await onnxFileOf(resolved.source.path);
  }
  const float = await loadModel(floatPath);
  const floatBytes = float.encode();
  const model = OnnxModel.decode(floatBytes);
  const context: ModelTransformContext = {
    model: name,
    kind: llm ? 'llm' : 'tensor',
    path: floatPath,
    progress: reporter.create(),
    ...(Object.keys(options).length > 0 && { options }),
  };
  const result = await transforms.use(contribution, (t) => t.transform(model, context));
  result.model.metadataProps['nucleus.transform'] =
    `${opts.method} (${contribution.pluginId}@${contribution.pluginVersion}): ${result.summary}`;
  await mkdir(opts.out, { recursive: true });
  await saveModel(join(opts.out, 'model.onnx'), result.model);
  const quantizedBytes = result.model.encode();
  const accuracy = llm
    ? await compareLlms(
        floatBytes,
        quantizedBytes,
        llm.config,
        await loadTokenizer(llm.tokenizer),
        readFileSync(opts.text!, 'utf8'),
      )
    : await compareTensorModels(floatBytes, quantizedBytes, opts.eval);
  const quantizedSize = (await stat(join(opts.out, 'model.onnx'))).size;
  const floatSize = floatBytes.byteLength;
  const report: QuantizeReportFile = {
    model: source,
    method: opts.method,
    options,
    summary: result.summary,
    sizeBytes: { float: floatSize, quantized: quantizedSize, ratio: floatSize / quantizedSize },
    accuracy,
    speedRatio: accuracy.floatSeconds / Math.max(1e-9, accuracy.quantizedSeconds),
  };
  const modelJson = {
    name,
    source,
    kind: context.kind,
    quantize: Object.keys(options).length > 0 ? { method: opts.method, ...options } : opts.method,
    transform: result.model.metadataProps['nucleus.transform'],
    files: { model: 'model.onnx', report: 'report.json' },
    ...(llm && { decoder: llm.config }),
  };
  await writeFile(join(opts.out, 'model.json'), `${JSON.stringify(modelJson, null, 2)}\n`);
  await writeFile(join(opts.out, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}

// An .onnx file, a folder with model.onnx, or a repository folder with numbered versions (the highest).
async function onnxFileOf(path: string): Promise<string> {
  if (path.endsWith('.onnx')) return path;
  const direct = join(path, 'model.onnx');
  if (
    await stat(direct).then(
      () => true,
      () => false,
    )
  )
    return direct;
  const versions = readdirSync(path)
    .filter((d) => /^\d+$/.test(d))
    .sort((a, b) => Number(b) - Number(a));
  if (versions[0] !== undefined) return join(path, versions[0], 'model.onnx');
  throw new UsageError(`${path}: no model.onnx found`);
}

function formatReport(r: QuantizeReportFile, out: string): string {
  const a = r.accuracy;
  const lines = [
    `${r.method}: ${r.summary}`,
    `size: ${(r.sizeBytes.float / 1024).toFixed(1)} KiB → ${(r.sizeBytes.quantized / 1024).toFixed(1)} KiB (${r.sizeBytes.ratio.toFixed(2)}× smaller)`,
    `speed: ${r.speedRatio.toFixed(2)}× float32 on the same runs`,
  ];
  if (a.kind === 'tensor') {
    lines.push(`inputs: ${a.samples} rows from ${a.inputs}`);
    if (a.top1Agreement !== undefined)
      lines.push(`top-1 agreement (${a.classifierOutput}): ${(a.top1Agreement * 100).toFixed(2)} %`);
    for (const [name, d] of Object.entries(a.outputs))
      lines.push(`${name}: max |Δ| ${d.maxAbsDiff.toPrecision(3)}, mean |Δ| ${d.meanAbsDiff.toPrecision(3)}`);
  } else {
    lines.push(`text: ${a.tokens} tokens`);
    lines.push(`perplexity: ${a.perplexity.float.toFixed(3)} float → ${a.perplexity.quantized.toFixed(3)} quantized`);
    lines.push(`greedy next-token agreement: ${(a.greedyAgreement * 100).toFixed(2)} %`);
    lines.push(`logits: max |Δ| ${a.maxAbsLogitDiff.toPrecision(3)}, mean |Δ| ${a.meanAbsLogitDiff.toPrecision(3)}`);
  }
  lines.push(`written: ${join(out, 'model.onnx')}, model.json, report.json`);
  return `${lines.join('\n')}\n`;
}
