import { createHash } from 'node:crypto';
import { basename } from 'node:path';
import {
  NucleusError,
  parseQuantizeSetting,
  type Contribution,
  type ExtensionPointView,
  type Logger,
  type ModelTransform,
  type ModelTransformContext,
  type QuantizeSetting,
} from '@nucleus/sdk';
import { loadModel } from '@nucleus/sdk/onnx';
import { ProgressReporter } from '../kernel/progress-reporter.js';
import { ensureGeneratedGraph, sha256FileCached } from '@nucleus/sdk/llm';

/** What `applyModelTransform` needs. */
export interface ApplyModelTransformOptions extends ModelTransformContext {
  /** The transform the config names (`models[].quantize`), with its per-model settings when it has any. */
  transform: QuantizeSetting;
  /** The `modelTransform` extension point; absent means no transform is available. */
  transforms: ExtensionPointView<ModelTransform> | undefined;
  /** Where rewritten graphs are cached (`<cacheDir>/transformed/…`). */
  cacheDir: string;
  logger: Logger;
}

/** The names of the transforms plugins offer now, for error messages. */
export function availableTransforms(transforms: ExtensionPointView<ModelTransform> | undefined): string[] {
  return [...new Set((transforms?.list() ?? []).map((c) => c.name))].sort();
}

/** The contribution named `method`; a name no active plugin offers is a 422 listing those offered. */
export function findTransform(
  transforms: ExtensionPointView<ModelTransform> | undefined,
  method: string,
  model: string,
): Contribution<ModelTransform> {
  const contribution = transforms?.find(method);
  if (contribution) return contribution;
  const available = availableTransforms(transforms);
  throw new NucleusError(
    422,
    'model_transform_unavailable',
    `model '${model}' asks for quantize "${method}", but no active plugin provides a model transform by that name ` +
      `(available: ${available.length > 0 ? available.join(', ') : 'none'})`,
  );
}

/**
 * Rewrites the graph at `path` with the named `modelTransform` contribution and returns the path of the result. The
 * result is cached by the source file's SHA-256, the transform's name, plugin version and fingerprint, so a model is
 * rewritten once, not on every load. A name no active plugin offers fails with the list of those that are offered.
 */
export async function applyModelTransform(options: ApplyModelTransformOptions): Promise<string> {
  const { method, options: perModel } = parseQuantizeSetting(options.transform);
  const contribution = findTransform(options.transforms, method, options.model);
  const sha = await sha256FileCached(options.path, options.cacheDir);
  const { pluginId, pluginVersion, value } = contribution;
  const own = perModel ? ((await contribution.value.optionsFingerprint?.(perModel)) ?? JSON.stringify(perModel)) : '';
  const settings = createHash('sha256')
    .update(`${pluginId}@${pluginVersion}\u0000${value.fingerprint}${perModel ? `\u0000${own}` : ''}`)
    .digest('hex')
    .slice(0, 16);
  const key = `${sha}-${method}-${settings}`;
  // A caller that passes no progress (the LLM engine) still gets the default: a terminal line or periodic log lines.
  const progress = options.progress ?? new ProgressReporter({ logger: options.logger }).create();
  const context: ModelTransformContext = {
    model: options.model,
    kind: options.kind,
    path: options.path,
    progress,
    ...(perModel && { options: perModel }),
  };
  const started = performance.now();
  let summary = '';
  const { path, created } = await ensureGeneratedGraph(options.cacheDir, 'transformed', key, async () => {
    const source = await loadModel(options.path);
    const result = await options.transforms!.use(contribution, (t) => t.transform(source, context));
    summary = result.summary;
    result.model.metadataProps['nucleus.transform'] = `${method} (${pluginId}@${pluginVersion}): ${summary}`;
    result.model.metadataProps['nucleus.transform_source'] = basename(options.path);
    return result.model;
  });
  const fields = { model: options.model, transform: method, plugin: `${pluginId}@${pluginVersion}`, path };
  if (created)
    options.logger.info(
      { ...fields, summary, durationMs: Math.round(performance.now() - started) },
      'model graph rewritten',
    );
  else options.logger.info(fields, 'model graph rewritten earlier; reusing it');
  return path;
}
