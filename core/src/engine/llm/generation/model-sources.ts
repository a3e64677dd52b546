import {
  NucleusError,
  type BuiltinModel,
  type ExtensionPointView,
  type Logger,
  type ModelTransform,
  type QuantizeSetting,
} from '@nucleus/sdk';
import type { LoadedLlm } from '@nucleus/sdk/llm';
import type { ModelFormats } from '../../model-formats.js';
import { applyModelTransform } from '../../model-transforms.js';
import { chooseGraphStyle, type GraphStyle } from '../graph-style.js';
import { nowS, type ConfiguredLlm, type ModelDraft } from './served-model.js';

/** What {@link ModelSources} loads models with. */
export interface ModelSourcesOptions {
  formats: ModelFormats;
  transforms?: ExtensionPointView<ModelTransform>;
  /** Where built-in and generated models live. */
  cacheDir: string;
  logger: Logger;
}

/**
 * Where the served models come from: built-in LLMs and encoders that plugins contribute, and models read through the
 * format that claims their source (a `models[]` entry, or a run-time load). Each is a {@link ModelDraft} whose
 * `prepare` writes the graph and settings to run once the backend is known, choosing the graph style for it.
 */
export class ModelSources {
  constructor(private readonly options: ModelSourcesOptions) {}

  /** A built-in LLM: its plugin puts its files in the cache on first use, then it loads as a configured model would. */
  builtinLlm(builtin: BuiltinModel): ModelDraft {
    const model = this.configured(
      { name: builtin.name, path: '' },
      () => builtin.prepare(this.options.cacheDir),
      builtin.chatTemplate,
    );
    // Its files are known once written; the info shows no path until then.
    delete model.path;
    return Object.assign(model, {
      origin: 'builtin' as const,
      state: 'idle' as const,
      maxContext: builtin.maxContext ?? 0,
      chatTemplate: true,
      ...(builtin.dimensions !== undefined && { dimensions: builtin.dimensions }),
    });
  }

  /** A built-in encoder: a graph without a tokenizer of its own, whose facts its plugin gives. */
  builtinEmbedding(builtin: BuiltinModel): ModelDraft {
    const encoder = builtin.encoder;
    if (!encoder) throw new Error(`built-in embedding model '${builtin.name}' gives no encoder facts`);
    return {
      name: builtin.name,
      kind: 'embedding',
      origin: 'builtin',
      version: '1',
      created: nowS(),
      state: 'idle',
      maxContext: encoder.maxPositions,
      dimensions: encoder.hiddenSize,
      chatTemplate: false,
      prepare: async () => ({ role: 'encoder', onnxPath: await builtin.prepare(this.options.cacheDir), encoder }),
    };
  }

  // The graph style a model opens with (see `chooseGraphStyle`), recorded for its info and logged.
  #graphStyle(model: ModelDraft, of: Parameters<typeof chooseGraphStyle>[0]): GraphStyle {
    const { style, reason } = chooseGraphStyle(of);
    model.graphStyle = style;
    this.options.logger.info({ model: model.name, graphStyle: style, backend: of.backend, reason }, 'graph style');
    return style;
  }

  /**
   * A configured (or run-time) model. `source` gives the path to load when it is known only at open (a built-in's
   * files are written then); a chat template given here replaces the model's own.
   */
  configured(
    entry: ConfiguredLlm,
    source: () => Promise<string> = async () => entry.path,
    chatTemplate?: string,
  ): ModelDraft {
    const { name, path, backend, graphStyle, quantize } = entry;
    const model: ModelDraft = {
      name,
      kind: 'llm',
      origin: 'config',
      version: '1',
      path,
      created: nowS(),
      state: 'loading',
      maxContext: 0,
      chatTemplate: false,
      ...(backend !== undefined && { backend }),
      prepare: async (selected) => {
        // A format that builds its graph from weights builds the style the backend runs best; an export brings its own.
        const pin = entry.sha256 === undefined ? {} : { sha256: entry.sha256 };
        const sourcePath = await source();
        const resolved = await this.options.formats.resolve(sourcePath, pin);
        const style = this.#graphStyle(model, {
          ...(graphStyle && { configured: graphStyle }),
          builtByNucleus: resolved.match.buildsGraph === true,
          backend: selected,
        });
        const loaded = await this.options.formats.loadLlm(resolved, {
          name,
          cacheDir: this.options.cacheDir,
          graphStyle: style,
          options: entry,
          logger: this.options.logger,
        });
        const template = chatTemplate ?? entry.chatTemplate;
        const llm = template === undefined ? loaded : { ...loaded, chatTemplate: template };
        model.maxContext = llm.config.maxContext;
        model.dimensions = llm.config.hiddenSize;
        model.chatTemplate = llm.chatTemplate !== undefined;
        // A format that builds the graph from float weights may quantize them itself (safetensors `int8`/`int4`).
        const onnxPath =
          quantize === undefined || llm.quantized === quantize
            ? llm.onnxPath
            : await applyModelTransform({
                model: name,
                kind: 'llm',
                path: llm.onnxPath,
                transform: quantize,
                transforms: this.options.transforms,
                cacheDir: this.options.cacheDir,
                logger: this.options.logger,
              });
        const draft = await this.#draft(entry, sourcePath, style, llm);
        return {
          role: 'decoder',
          onnxPath,
          ...(draft && { draft }),
          decoder: {
            config: llm.config,
            tokenizer: llm.tokenizer,
            ...(llm.chatTemplate !== undefined && { chatTemplate: llm.chatTemplate }),
          },
        };
      },
    };
    return model;
  }

  /**
   * The draft model of `models[].speculation`: its `draft` source, or the model's own (`sourcePath`), cut to
   * `draftLayers` when given and quantized by `draftQuantize`, built in the model's graph style. It must share the model's vocabulary, and a format
   * that cannot cut layers fails the load rather than serve a full-size draft.
   */
  async #draft(
    entry: ConfiguredLlm,
    sourcePath: string,
    style: GraphStyle,
    target: LoadedLlm,
  ): Promise<{ onnxPath: string; config: LoadedLlm['config'] } | undefined> {
    const s = entry.speculation as
      | { draft?: string; draftLayers?: number; draftQuantize?: QuantizeSetting }
      | undefined;
    if (!s || (s.draft === undefined && s.draftLayers === undefined && s.draftQuantize === undefined)) return undefined;
    const resolved = await this.options.formats.resolve(s.draft ?? sourcePath, {});
    const draft = await this.options.formats.loadLlm(resolved, {
      name: `${entry.name}-draft`,
      cacheDir: this.options.cacheDir,
      graphStyle: style,
      options: {},
      logger: this.options.logger,
      ...(s.draftLayers !== undefined && { layers: s.draftLayers }),
    });
    if (draft.config.vocabSize !== target.config.vocabSize)
      throw new NucleusError(
        422,
        'draft_model_mismatch',
        `model '${entry.name}': the draft model ${s.draft ?? sourcePath} has a vocabulary of ${draft.config.vocabSize} tokens, the model ${target.config.vocabSize}; a draft must share the model's tokenizer`,
      );
    if (s.draftLayers !== undefined && draft.config.numLayers > s.draftLayers)
      throw new NucleusError(
        422,
        'draft_layers_unsupported',
        `model '${entry.name}': speculation.draftLayers is ${s.draftLayers}, but the ${resolved.format?.name ?? 'model'} format built all ${draft.config.numLayers} layers; early-exit drafts need a format that builds its graph from weights`,
      );
    // The same transform `models[].quantize` applies, on the draft's own graph (cached like the model's).
    const onnxPath =
      s.draftQuantize === undefined
        ? draft.onnxPath
        : await applyModelTransform({
            model: `${entry.name}-draft`,
            kind: 'llm',
            path: draft.onnxPath,
            transform: s.draftQuantize,
            transforms: this.options.transforms,
            cacheDir: this.options.cacheDir,
            logger: this.options.logger,
          });
    this.options.logger.info(
      {
        model: entry.name,
        draft: s.draft ?? sourcePath,
        layers: draft.config.numLayers,
        graphStyle: style,
        ...(s.draftQuantize !== undefined && { quantize: s.draftQuantize }),
      },
      'draft model loaded',
    );
    return { onnxPath, config: draft.config };
  }
}
