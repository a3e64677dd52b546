import { existsSync, readdirSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  NucleusError,
  type ExtensionPointView,
  type FormatLoadContext,
  type FormatMatch,
  type Logger,
  type ModelFormat,
  type ModelSource,
} from '@nucleus/sdk';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import { ProgressReporter } from '../kernel/progress-reporter.js';
import { ModelLocator, type LocateOptions } from './model-locator.js';

/** What resolving a source found: the format that loads it (none for a plain graph), and which engine serves it. */
export interface ResolvedSource {
  source: ModelSource;
  /** Undefined for an ONNX graph no format claimed: the tensor engine runs it as it is. */
  format?: ModelFormat;
  match: FormatMatch;
}

/**
 * The `modelFormat` extension point, read: which active format loads a source. Every format is asked; the most
 * confident wins, and the choice is logged when several claimed the source. A source no format claims is an error
 * listing the active formats, what each accepts and why any turned it down — except a plain ONNX graph, which the
 * tensor engine runs without a format.
 */
export class ModelFormats {
  readonly #formats: () => readonly ModelFormat[];
  readonly #log: Logger | undefined;
  readonly #locator: ModelLocator | undefined;

  /** `locator` fetches sources with a URI scheme (`hf://…`); without one, only local paths resolve. */
  constructor(
    formats: ExtensionPointView<ModelFormat> | readonly ModelFormat[],
    logger?: Logger,
    locator?: ModelLocator,
  ) {
    this.#formats = Array.isArray(formats)
      ? () => formats as readonly ModelFormat[]
      : () => (formats as ExtensionPointView<ModelFormat>).list().map((c) => c.value);
    this.#log = logger;
    this.#locator = locator;
  }

  /**
   * The format that loads `source` (a path, relative to the working directory, or a URI a `modelSource` plugin
   * fetches first); throws a 400 `NucleusError` when none does.
   */
  async resolve(source: string, options: LocateOptions = {}): Promise<ResolvedSource> {
    const model = await describe(source, await this.#locate(source, options));
    const formats = this.#formats();
    const answers: { format: ModelFormat; match: FormatMatch }[] = [];
    for (const format of formats) {
      let match: FormatMatch | undefined;
      try {
        match = await format.detect(model);
      } catch (err) {
        match = { confidence: 0, reason: `failed to inspect it (${(err as Error).message})`, kind: 'tensor' };
      }
      if (match) answers.push({ format, match });
    }
    const claims = answers
      .filter((a) => a.match.confidence > 0)
      .sort((a, b) => b.match.confidence - a.match.confidence);
    const chosen = claims[0];
    if (chosen) {
      if (claims.length > 1) {
        this.#log?.info(
          {
            source,
            format: chosen.format.name,
            candidates: claims.map((c) => `${c.format.name} (${c.match.confidence}: ${c.match.reason})`),
          },
          `several formats claim ${source}; the most confident, ${chosen.format.name}, loads it`,
        );
      }
      return { source: model, format: chosen.format, match: chosen.match };
    }
    if (isOnnxGraph(model)) return { source: model, match: { confidence: 1, reason: 'an ONNX graph', kind: 'tensor' } };
    const refusals = answers.map((a) => `${a.format.name}: ${source} ${a.match.reason}`);
    const active = formats.map((f) => `${f.name} (${f.accepts})`);
    throw new NucleusError(
      400,
      'unsupported_model_format',
      [
        `no active model format loads ${source}.`,
        ...refusals,
        active.length
          ? `Active formats: ${active.join('; ')}.`
          : 'No model format plugin is active: enable one with the admin API (POST /admin/plugins/<id>/enable) or `plugins.disabled`; `nucleus plugins list` shows them.',
      ].join(' '),
    );
  }

  // A source with a scheme needs a plugin that fetches it; a local path is used where it is.
  async #locate(source: string, options: LocateOptions): Promise<string> {
    if (this.#locator) return this.#locator.locate(source, options);
    const scheme = ModelLocator.schemeOf(source);
    if (scheme !== undefined)
      throw new NucleusError(
        400,
        'unsupported_model_source',
        `no model source plugin fetches ${scheme}:// sources such as ${source}`,
      );
    return resolve(source);
  }

  /** Loads a source (resolved already, or resolved now) as a decoder LLM with the format that claims it. */
  async loadLlm(
    source: string | ResolvedSource,
    context: Omit<FormatLoadContext, 'graphStyle' | 'progress'> &
      Partial<Pick<FormatLoadContext, 'graphStyle' | 'progress'>>,
  ): Promise<LoadedLlm> {
    const resolved = typeof source === 'string' ? await this.resolve(source) : source;
    const { format, match } = resolved;
    if (!format?.loadLlm || match.kind !== 'llm') {
      throw new NucleusError(
        400,
        'unsupported_model_format',
        `${resolved.source.source} is ${match.reason}, which is served as a tensor model, not a language model`,
      );
    }
    // Long steps (hashing a multi-GB file, building its graph) show a terminal line or periodic log lines.
    const reporter = new ProgressReporter({ logger: context.logger });
    return format.loadLlm(resolved.source, {
      ...context,
      graphStyle: context.graphStyle ?? 'generic',
      progress: context.progress ?? (() => reporter.create()),
    });
  }
}

/**
 * Stats a source: where it is (`path`, the local file a fetched source was written to) and whether it is a file or a
 * folder; a missing one is a 400 saying so.
 */
export async function describe(source: string, path = resolve(source)): Promise<ModelSource> {
  const info = await stat(path).catch((err: NodeJS.ErrnoException) => {
    const why =
      err.code === 'ENOENT'
        ? 'does not exist'
        : err.code === 'EACCES'
          ? 'cannot be read (permission denied)'
          : `cannot be read (${err.code ?? err.message})`;
    throw new NucleusError(
      400,
      'model_source_not_found',
      // Only what the caller gave: a resolved path would tell an API client where the server runs.
      `model source ${source} ${why}; check the path`,
    );
  });
  return { source, path, type: info.isDirectory() ? 'directory' : 'file' };
}

// An .onnx file, or a folder holding model.onnx directly or in version folders: runs as it is, no format needed.
function isOnnxGraph(model: ModelSource): boolean {
  if (model.type === 'file') return model.path.endsWith('.onnx');
  if (existsSync(join(model.path, 'model.onnx'))) return true;
  return readdirSync(model.path, { withFileTypes: true }).some(
    (d) => d.isDirectory() && existsSync(join(model.path, d.name, 'model.onnx')),
  );
}
