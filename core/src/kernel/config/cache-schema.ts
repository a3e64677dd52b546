/** The `cache` section of the config (see `CORE_CONFIG_SCHEMA`): where generated models go, and the LLM prefix cache. */
export const CACHE_SCHEMA = {
  type: 'object',
  description: 'Caches of the engines.',
  default: {},
  additionalProperties: false,
  properties: {
    dir: {
      type: ['string', 'null'],
      minLength: 1,
      description:
        'Folder for the models Nucleus generates or rewrites: the built-in models, graphs that formats build from weight files, quantized graphs and the file-hash index. null: `.cache/models` in the project root. `nucleus doctor` reports the free disk space there.',
      default: null,
      'x-path': true,
    },
    prefix: {
      type: 'object',
      description:
        'The LLM prefix cache: prompts that start alike reuse the KV of their shared start instead of computing it again.',
      default: {},
      additionalProperties: false,
      properties: {
        enabled: {
          type: 'boolean',
          description:
            'Keep the KV of prompts (and of finished outputs) in blocks for later prompts that start with the same tokens.',
          default: true,
        },
        maxBytes: {
          type: ['integer', 'null'],
          minimum: 0,
          description:
            'Most bytes of KV each LLM replica keeps; beyond it the cache policy evicts. null: 80% of the memory free when a replica starts, shared by the LLMs served and their replicas.',
          default: null,
          'x-runtime': true,
        },
        blockTokens: {
          type: 'integer',
          minimum: 1,
          description: 'Tokens per block: prompts share, and the policy evicts, whole blocks.',
          default: 16,
        },
        policy: {
          type: 'string',
          pattern: '^[a-z][a-z0-9-]*$',
          description:
            'Eviction policy by name, from the `cachePolicy` contributions of plugins (`lru` from cache-lru).',
          default: 'lru',
        },
        shareAcrossKeys: {
          type: 'boolean',
          description:
            "Whether user API keys share one prefix cache. false: each user key's prompts are cached apart, so a key's `cached_tokens` (or its latency) never tells whether another key sent the same text; admin keys, and every request while no key is configured, use the common cache. true: one cache for all, more hits when keys send the same prompts (one tenant behind several keys).",
          default: false,
          'x-runtime': true,
        },
        persist: {
          type: 'boolean',
          description:
            "Write each LLM replica's prefix cache to `<cache.dir>/prefix-cache/` (named by the model's sha256 and graph style) at graceful shutdown and every `persistIntervalMs`, and restore it when the same model loads again, so prompts seen before a restart start warm. A file that is corrupt or was written for another model, graph or block size is ignored with a log line.",
          default: false,
        },
        persistIntervalMs: {
          type: 'integer',
          minimum: 0,
          description:
            'With `persist`: how often the prefix caches are also written while serving (a crash then loses at most this much); 0 writes them only at shutdown.',
          default: 300_000,
        },
      },
    },
  },
} as const;
