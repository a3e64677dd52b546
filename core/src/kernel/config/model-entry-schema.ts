/**
 * A model transform (`quantize`, `speculation.draftQuantize`): its name, or an object naming it by `method` with that
 * method's settings, which the transform checks itself.
 */
const TRANSFORM_NAMED = {
  type: ['string', 'object'],
  minLength: 1,
  required: ['method'],
  properties: {
    method: { type: 'string', minLength: 1, description: 'The transform, as in the plain-name form.' },
  },
} as const;

/** One `models[]` entry of the config: a model to serve and its serving settings (see `CORE_CONFIG_SCHEMA`). */
export const MODEL_ENTRY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'path'],
  properties: {
    name: {
      type: 'string',
      pattern: '^[A-Za-z0-9][A-Za-z0-9._-]*$',
      description: 'Name the API serves the model under.',
    },
    path: {
      type: 'string',
      minLength: 1,
      description:
        'The model file or folder; the active model format that claims it loads it. A source with a scheme is ' +
        'fetched first by the plugin that handles it (`modelSource`): `hf://ORG/REPO[@REVISION][/FILE]` from the ' +
        'Hugging Face Hub, `https://HOST/PATH/FILE` (plugin source-hub), into a local cache.',
      'x-path': true,
    },
    sha256: {
      type: ['string', 'object'],
      pattern: '^[0-9a-fA-F]{64}$',
      minProperties: 1,
      additionalProperties: { type: 'string', pattern: '^[0-9a-fA-F]{64}$' },
      description:
        'Hex SHA-256 the model file must have (a single-file source of any format, local or fetched), or for a ' +
        'folder (safetensors checkpoint, ONNX export, version folders) a pin per file by its path in the folder: ' +
        '`{"model.safetensors": "…", "1/model.onnx": "…"}`. A file that differs, or a pinned file that is ' +
        'missing, is refused; files the map does not name are not checked.',
    },
    tokenizer: {
      type: 'string',
      minLength: 1,
      description:
        'A tokenizer file, for sources that keep it apart from the weights; the format that loads the model reads it.',
      'x-path': true,
    },
    quantizedMatmul: {
      type: 'string',
      enum: ['float32', 'int8'],
      description:
        'LLMs built from block-quantized weights (Q4_K, Q8_0 …): `float32` multiplies the dequantized weights in ' +
        "float32 (matches exact arithmetic on the file's values); `int8` quantizes the activations to int8 per " +
        "block first, as llama.cpp does (faster, numbers within llama.cpp's own error). Unset: `float32`.",
    },
    chatTemplate: {
      type: 'string',
      minLength: 1,
      description: "A Jinja chat template that replaces the model's own (LLMs).",
    },
    version: {
      type: 'string',
      minLength: 1,
      description: 'Version label; several versions of one name may be loaded.',
    },
    backend: {
      type: 'string',
      minLength: 1,
      description: 'Overrides the top-level `backend` for this model; a name no installed backend has fails its load.',
    },
    graphStyle: {
      type: 'string',
      enum: ['generic', 'contrib'],
      description:
        'LLMs whose format builds their graph from weights: `contrib` uses ORT contrib ops (GroupQueryAttention ' +
        'over a KV buffer per layer that the worker keeps, sized to the longest running sequence; a step reads ' +
        'it in place and returns only the new keys and values) instead of the generic layout (left-padded KV ' +
        'concatenated every step). Unset: `contrib` when the model runs on the CPU backend, `generic` on any ' +
        'other (ORT runs GroupQueryAttention on CUDA for float16/bfloat16 only). ONNX export folders are always ' +
        '`generic`.',
    },
    maxBatchSize: {
      type: 'integer',
      minimum: 1,
      description: 'Overrides `batching.maxBatchSize` for this model.',
    },
    maxQueueDelayMs: {
      type: 'number',
      minimum: 0,
      description: 'Overrides `batching.maxQueueDelayMs` for this model.',
    },
    preferredBatchSizes: {
      type: 'array',
      items: { type: 'integer', minimum: 1 },
      description:
        'Batch sizes the dynamic batcher sends at once when the queue can form one (the largest it can); ' +
        "otherwise a batch waits up to `maxQueueDelayMs` and goes whole. Overrides model.json's " +
        '`batching.preferredBatchSizes`.',
    },
    batching: {
      type: 'boolean',
      description: 'Whether requests to this model are batched; off for models without a batch dimension.',
    },
    optional: {
      type: 'boolean',
      description:
        'Serve without this model when it fails to load at start (/ready stays 200, degraded, naming it) instead ' +
        'of exiting; see `startup.requireModels`.',
    },
    fallback: {
      type: 'string',
      minLength: 1,
      description:
        "Another model that answers this one's requests while its circuit breaker is open or it has no ready " +
        'version, when its inputs match (for an LLM: another LLM served here); the response names the model that ' +
        'answered.',
    },
    quantize: {
      description:
        'A graph rewrite applied when the model loads, named by the plugin that contributes it ' +
        "(`modelTransform`), alone or as `method` of an object with that method's settings. Plugin quant-int8: " +
        '`int8` and `int4` store MatMul weights and embeddings as 8- or 4-bit blocks ' +
        '(`{ method: int4, blockSize: 128, symmetric: false }`); `int8-dq` stores Conv, Gemm and MatMul weights ' +
        'int8 per output channel behind DequantizeLinear (float compute); `fp16` stores float weights as ' +
        'float16; `dynamic` quantizes MatMul activations at run time (DynamicQuantizeLinear + MatMulInteger); ' +
        '`static` calibrates int8 activations on sample inputs ' +
        '(`{ method: static, calibration: samples.jsonl, calibrator: minmax | percentile | entropy }`, see the ' +
        'plugin README). The rewritten graph is cached; a name no active plugin offers fails the load with the ' +
        'list of those offered. LLMs whose format builds the graph from float weights (safetensors checkpoints) ' +
        'are quantized by the format itself as it reads them: `int8` or `int4` (symmetric blocks of 32, run by ' +
        'the same MatMulNBits nodes as block-quantized checkpoints).',
      ...TRANSFORM_NAMED,
    },
    speculative: {
      type: 'string',
      minLength: 1,
      description:
        'Speculative decoding for this LLM, by the method a plugin contributes (`draftProposer`): `ngram` ' +
        '(plugin spec-decode) drafts tokens by prompt lookup and the model verifies them in one step, with the ' +
        'output unchanged (exact under greedy sampling). A name no active plugin offers fails the load with the ' +
        'list of those offered.',
    },
    speculation: {
      type: 'object',
      additionalProperties: false,
      description:
        'Speculative decoding with its settings (instead of `speculative`). With `draft`, `draftLayers` or ' +
        '`draftQuantize` the method defaults to `draft` (plugin spec-decode): a smaller model with the same ' +
        'vocabulary proposes tokens and this model verifies them in one step; greedy output is unchanged and ' +
        "sampled output keeps this model's distribution.",
      properties: {
        method: {
          type: 'string',
          minLength: 1,
          description: 'The method a plugin contributes (`ngram`, `draft`); default `draft` when a draft is given.',
        },
        draft: {
          type: 'string',
          minLength: 1,
          description:
            "The draft model: a file or folder an active format loads (it must share this model's vocabulary). " +
            'Default: this model itself, cut to `draftLayers` and quantized by `draftQuantize` ' +
            '(self-speculation).',
          'x-path': true,
        },
        draftLayers: {
          type: 'integer',
          minimum: 1,
          description:
            'Build the draft from only the first this many layers of its source, then its final norm and head ' +
            '(LayerSkip-style early exit); with no `draft`, of this model itself. Formats that build their ' +
            'graphs from weights support it.',
        },
        draftQuantize: {
          description:
            "A `quantize` transform (as `models[].quantize` names it, e.g. `int8`) applied to the draft's graph: " +
            'with no `draft` and no `draftLayers`, the draft is this model itself with quantized weights, which ' +
            'agrees with it on most tokens at a fraction of its step cost where its weights, not per-step ' +
            'overhead, set that cost.',
          ...TRANSFORM_NAMED,
        },
        numSpeculativeTokens: {
          type: 'integer',
          minimum: 1,
          maximum: 16,
          description:
            "Most draft tokens per step (k) for this model; default the method's " +
            '(`plugin.spec-decode.numSpeculativeTokens`).',
        },
      },
    },
    warmup: {
      type: ['boolean', 'integer'],
      minimum: 0,
      description:
        'Warm-up runs after load (true = 1) so the first request does not pay for lazy initialisation: a tensor ' +
        'model runs one row of dummy inputs (default 1), an LLM a greedy generation of 4 tokens on each replica ' +
        '(default 1 for loads and swaps at run time, and for a configured LLM at start while `startup.warmUp` is ' +
        'on, 0 when it is off). At a load or swap while serving, a warm-up that fails fails the load and the old ' +
        'version keeps serving.',
    },
    isolation: {
      type: 'string',
      enum: ['thread', 'process'],
      description: 'Overrides `workers.isolation` for this model.',
    },
    worker: {
      type: 'string',
      enum: ['shared', 'own'],
      description:
        'Overrides `workers.shareBelowBytes` for this model: `shared` runs it in the worker thread small models of its kind share (with one replica in thread isolation), `own` in a thread of its own.',
    },
    workers: {
      type: 'integer',
      minimum: 1,
      description:
        'Overrides `workers.perModel` for this model: its replicas (for an LLM, each with its own session, ' +
        'scheduler and prefix cache).',
    },
  },
} as const;
