import { AUTH_SCHEMA } from './auth-schema.js';
import { CACHE_SCHEMA } from './cache-schema.js';
import { MODEL_ENTRY_SCHEMA } from './model-entry-schema.js';
import { SERVER_SCHEMA, WS_SCHEMA } from './server-schema.js';
import { TUNING_SCHEMA } from './tuning-schema.js';

/**
 * The JSON Schema of the kernel's config. Everything else here — env names, coercion, validation,
 * defaults, the `NucleusConfig` type and the README's reference table — is derived from it, so a key
 * is added in exactly one place.
 *
 * Annotations beyond draft-07: `x-runtime` (may change without restart), `x-secret` (redacted in
 * print and in error messages), `x-env` (an extra env var name), `x-path` (a file-system path; a
 * relative one in the config file is resolved against the file's folder), `x-plugin` (the id of the
 * plugin that reads the key; set while that plugin will not run, the key does nothing and start-up warns).
 */

/** A JSON Schema (draft-07) with the config annotations; loose on purpose, since plugins bring their own. */
export interface JsonSchema {
  readonly type?: JsonType | readonly JsonType[];
  readonly description?: string;
  readonly default?: unknown;
  readonly properties?: { readonly [key: string]: JsonSchema };
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | JsonSchema;
  readonly items?: JsonSchema;
  readonly enum?: readonly unknown[];
  readonly minimum?: number;
  readonly maximum?: number;
  readonly exclusiveMinimum?: number;
  readonly exclusiveMaximum?: number;
  readonly minLength?: number;
  readonly pattern?: string;
  readonly 'x-runtime'?: boolean;
  readonly 'x-secret'?: boolean;
  readonly 'x-env'?: string;
  readonly 'x-path'?: boolean;
  readonly 'x-plugin'?: string;
  readonly [keyword: string]: unknown;
}

/** The primitive types of JSON Schema. */
export type JsonType = 'string' | 'integer' | 'number' | 'boolean' | 'null' | 'array' | 'object';

/** The core config schema; plugin sections are added under `plugin.<id>` by {@link configSchemaWithPlugins}. */
export const CORE_CONFIG_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'Nucleus configuration',
  type: 'object',
  additionalProperties: false,
  properties: {
    server: SERVER_SCHEMA,
    auth: AUTH_SCHEMA,
    plugins: {
      type: 'object',
      description: 'Plugin discovery and lifecycle.',
      default: {},
      additionalProperties: false,
      properties: {
        dirs: {
          type: 'array',
          description: 'Extra folders to discover plugins in, besides node_modules.',
          default: [],
          items: { type: 'string', minLength: 1, 'x-path': true },
        },
        watch: {
          type: 'boolean',
          description: 'Reload a plugin when its files change.',
          default: true,
        },
        disabled: {
          type: 'array',
          description: 'Ids of plugins not to activate even when discovered.',
          default: [],
          items: { type: 'string', minLength: 1 },
        },
        drainTimeoutMs: {
          type: 'integer',
          minimum: 0,
          description: 'How long a plugin being unloaded may finish in-flight work before it is disposed anyway.',
          default: 10_000,
        },
      },
    },
    ws: WS_SCHEMA,
    backend: {
      type: 'string',
      minLength: 1,
      description:
        'Backend for models that do not name one: `auto` picks the best available; plugins add names (`cpu`, `cuda` …). A name no installed backend has stops the server at startup (exit 2); an installed one that is unusable here falls back to `cpu` and leaves /ready 200 but degraded, with the reason.',
      default: 'auto',
    },
    models: {
      type: 'array',
      description:
        'Models to serve: loaded at start; changed while serving (PATCH /admin/config), the model-lifecycle plugin loads, swaps and unloads to match.',
      default: [],
      'x-runtime': true,
      items: MODEL_ENTRY_SCHEMA,
    },
    modelRepository: {
      type: ['string', 'null'],
      minLength: 1,
      description: 'A folder of models (`<name>/<version>/model.onnx`) to serve besides `models`; null means none.',
      default: null,
      'x-path': true,
    },
    allowedModelRoots: {
      type: ['array', 'null'],
      items: { type: 'string', minLength: 1, 'x-path': true },
      description:
        "Folders every model must lie under, symlinks resolved: those configured at start (one elsewhere stops the start, exit code 2) and those loaded at run time (POST /admin/models, swaps, KServe repository loads, `models` changed with PATCH /admin/config; one elsewhere is refused with 403 `model_source_not_allowed`). A source with a scheme (`hf://`, `https://`) is checked by the copy it is fetched to: put its plugin's cache under a root. null: no restriction. Not changeable at run time, so a stolen admin key cannot widen it.",
      default: null,
    },
    queue: {
      type: 'object',
      description: 'Admission control in front of the scheduler.',
      default: {},
      additionalProperties: false,
      properties: {
        highWatermark: {
          type: 'integer',
          minimum: 1,
          description: 'Queued requests at which new ones are refused with 503.',
          default: 1000,
          'x-runtime': true,
        },
        lowWatermark: {
          type: 'integer',
          minimum: 0,
          description: 'Queued requests below which admission reopens; below highWatermark so it does not flap.',
          default: 500,
          'x-runtime': true,
        },
        timeoutMs: {
          type: 'integer',
          minimum: 1,
          description:
            'A request waiting in the queue longer than this fails with 408 (a request may ask for less with the X-Request-Timeout-Ms header).',
          default: 30_000,
          'x-runtime': true,
        },
      },
    },
    scheduler: {
      type: 'object',
      description: 'Which queued request runs next.',
      default: {},
      additionalProperties: false,
      properties: {
        strategy: {
          type: 'string',
          pattern: '^[a-z][a-z0-9-]*$',
          description: 'Scheduling strategy by name (`fifo`, `priority`; plugins add more).',
          default: 'priority',
          'x-runtime': true,
        },
        maxRunning: {
          type: 'integer',
          minimum: 1,
          description: 'Requests running at once across all models.',
          default: 32,
          'x-runtime': true,
        },
        batchWindowMs: {
          type: 'number',
          minimum: 0,
          description: 'How long a generation step waits for more sequences to join it.',
          default: 50,
        },
        maxBatchSize: {
          type: 'integer',
          minimum: 1,
          description: 'Most sequences in one generation step (continuous batching).',
          default: 32,
          'x-runtime': true,
        },
      },
    },
    batching: {
      type: 'object',
      description: 'Dynamic batching of single-shot requests; per-model settings override these.',
      default: {},
      additionalProperties: false,
      properties: {
        maxBatchSize: {
          type: 'integer',
          minimum: 1,
          description: 'Largest batch the batcher forms.',
          default: 32,
          'x-runtime': true,
        },
        maxQueueDelayMs: {
          type: 'number',
          minimum: 0,
          description: 'How long a request may wait for others to fill its batch.',
          default: 2,
          'x-runtime': true,
        },
      },
    },
    logging: {
      type: 'object',
      description: 'Logs.',
      default: {},
      additionalProperties: false,
      properties: {
        level: {
          type: 'string',
          enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'],
          description: 'Least severe level written.',
          default: 'info',
          'x-runtime': true,
        },
        format: {
          type: 'string',
          enum: ['auto', 'json', 'pretty'],
          description:
            '`json`: one JSON object per line, for log shippers. `pretty`: one readable line per event, coloured on a terminal. `auto`: pretty when stdout is a terminal, JSON otherwise (`nucleus serve --log-format`).',
          default: 'auto',
        },
        logPayloads: {
          type: 'boolean',
          description: 'Log request and response bodies; they may hold user data.',
          default: false,
        },
      },
    },
    workers: {
      type: 'object',
      description: 'Workers (threads or child processes) that run inference off the event loop.',
      default: {},
      additionalProperties: false,
      properties: {
        perModel: {
          type: 'integer',
          minimum: 1,
          description:
            'Workers (one session each; threads or processes, see `workers.isolation`) per loaded model version, and per LLM (each with its own scheduler and prefix cache). A change applies while serving: new replicas open before taking runs, retired ones finish their runs (an LLM replica, its generations) first.',
          default: 1,
          'x-runtime': true,
        },
        routing: {
          type: 'string',
          description:
            "The `replicaRouter` contribution (`round-robin`, `least-loaded`, `memory-aware`, or a plugin's) that chooses the replica for each batch; when none by that name is installed, the least busy replica.",
          default: 'least-loaded',
          'x-runtime': true,
        },
        llmRouting: {
          type: 'string',
          description:
            'The `replicaRouter` contribution that chooses the replica of an LLM for each generation (loads: sequences running and waiting, estimated KV bytes against free memory). `prefix-affinity` keeps a conversation (`conversation_id`), or prompts that begin alike, on one replica so its prefix cache serves them, unless that replica is much busier than the least loaded; any `workers.routing` name works too. When none by that name is installed, the least busy replica.',
          default: 'prefix-affinity',
          'x-runtime': true,
        },
        runTimeoutMs: {
          type: 'integer',
          minimum: 0,
          description:
            'A worker whose run takes longer than this is taken as hung: it is replaced, and its runs are retried on another replica or fail with 503 `worker_hung`; 0 never times out.',
          default: 60_000,
          'x-runtime': true,
        },
        isolation: {
          type: 'string',
          enum: ['thread', 'process'],
          description:
            'Where each worker runs: a thread of the server process, or a child process of its own, which survives a native crash (a crashed or frozen one is killed and restarted while the other replicas serve) and reports its measured memory. Applies to model versions loaded after the change.',
          default: 'thread',
        },
        shareBelowBytes: {
          type: 'integer',
          minimum: 0,
          description:
            'Models whose weights (the model file and the other files in its folder, `.json`, `.md` and `.txt` aside; for an LLM or embedding model, its graph as prepared) are smaller than this share a worker thread and run in turn there, instead of a thread each: tensor models one, LLMs and embedding models another (each with its generation loop). A worker thread costs about 10 MiB of memory whatever its model, and a small model runs in micro- to milliseconds. Only a model with one replica in thread isolation shares; `models[].worker` overrides the rule for a model; 0 gives every model a thread of its own. A crash or hang of a shared thread fails the requests in flight on it and restarts all its models. Applies to model versions loaded after the change.',
          default: 8 * 1024 * 1024,
        },
        heartbeatTimeoutMs: {
          type: 'integer',
          minimum: 0,
          description:
            'With process isolation: a worker process whose heartbeat (sent from a thread of its own, so long runs do not silence it) stops for this long is taken as frozen and killed, and its runs are retried or fail with 503; 0 turns the check off. Applies to workers started after the change.',
          default: 3000,
          'x-runtime': true,
        },
        niceness: {
          type: 'integer',
          minimum: 0,
          maximum: 19,
          description:
            "OS scheduling niceness of the inference workers (threads or processes; ORT's compute threads inherit it). Above 0, the server's event loop (health checks, admission, relaying tokens) wins the CPU when inference saturates it, at no cost to inference on an otherwise idle host; 0 runs them at the server's priority, e.g. on a host shared with other work that should not pass inference. In worker processes (`workers.isolation: process`) on Linux, the runtime's helper threads (V8's garbage collection, libuv's pool) run at it as well. Applies to workers started after the change.",
          default: 10,
          'x-runtime': true,
        },
        maxRestarts: {
          type: 'integer',
          minimum: 0,
          description:
            'Restarts in a row a worker gets: one that died this many times since it last did any work (a tensor run answered, an LLM step) is given up when it dies again — a tensor model version then answers 503 `worker_unavailable` until it is reloaded, an LLM replica fails what it holds with 503 `worker_unavailable` and starts again on the next request. Applies at the next death after the change.',
          default: 5,
          'x-runtime': true,
        },
      },
    },
    breaker: {
      type: 'object',
      description:
        'Circuit breaker of each tensor model version and each LLM: one that keeps failing answers 503 `circuit_open` at once instead of running; and the back-off of a model that failed to load.',
      default: {},
      additionalProperties: false,
      properties: {
        failureThreshold: {
          type: 'integer',
          minimum: 1,
          description:
            'Server-side failures in a row (run errors, failed generation steps, crashed or hung workers; not 4xx) that open the breaker.',
          default: 5,
          'x-runtime': true,
        },
        cooldownMs: {
          type: 'integer',
          minimum: 0,
          description:
            'How long an open breaker refuses requests (with Retry-After) before letting one trial request through.',
          default: 10_000,
          'x-runtime': true,
        },
        loadBackoffMs: {
          type: 'integer',
          minimum: 0,
          description:
            'After an LLM or embedding model fails to load (a configured model, a built-in, one opened on its first request), how long requests naming it are refused with 503 `model_unavailable` and Retry-After before one may try the load again; the wait doubles after each failure in a row, up to `breaker.loadBackoffMaxMs`. A successful load, an admin load or swap, or a change of its `models[]` entry starts over. 0: every request tries again.',
          default: 1000,
          'x-runtime': true,
        },
        loadBackoffMaxMs: {
          type: 'integer',
          minimum: 0,
          description: 'The longest wait between load attempts of a model that keeps failing to load.',
          default: 300_000,
          'x-runtime': true,
        },
      },
    },
    memory: {
      type: 'object',
      description:
        'Memory pressure: when free memory runs low the engines take less at once, and recover when it is free again.',
      default: {},
      additionalProperties: false,
      properties: {
        pressureFreeBytes: {
          type: 'integer',
          minimum: 0,
          description:
            'Free memory below which the server is under pressure: LLM running sequences and step batches, and tensor batch sizes, are halved and LLM prefix caches evict to half their budget, until 10% more than this is free again. 0: off.',
          default: 0,
          'x-runtime': true,
        },
        checkIntervalMs: {
          type: 'integer',
          minimum: 10,
          description: 'How often free memory is measured against `memory.pressureFreeBytes`.',
          default: 1000,
          'x-runtime': true,
        },
      },
    },
    startup: {
      type: 'object',
      description: 'What a start with problems does.',
      default: {},
      additionalProperties: false,
      properties: {
        requireModels: {
          type: 'boolean',
          description:
            'When true, `nucleus serve` exits 1 if a configured model fails to load at start (unless its `models[].optional` is true); when false it serves without it, /ready 503 (unavailable) naming it. Built-in models never stop a start.',
          default: true,
        },
        warmUp: {
          type: 'boolean',
          description:
            'When true, every LLM — built-ins included — is opened at start and warmed up with a short greedy generation (a configured model as many times as its `warmup` says, once when that is unset) before /ready answers 200, so no first request pays for loading. When false, built-in LLMs open on their first request and configured ones warm up only when their `warmup` asks.',
          default: true,
        },
      },
    },
    cache: CACHE_SCHEMA,
    tuning: TUNING_SCHEMA,
    plugin: {
      type: 'object',
      description: "Each plugin's own section, by plugin id, validated against that plugin's schema.",
      default: {},
      properties: {},
      additionalProperties: { type: 'object' },
    },
  },
} as const satisfies JsonSchema;

/** The effective config type, derived from a schema: keys with a default or listed in `required` are present. */
export type FromSchema<S> = S extends { readonly enum: readonly (infer E)[] }
  ? E
  : S extends { readonly type: readonly (infer T)[] }
    ? TypeOfSchema<T, S>
    : S extends { readonly type: infer T }
      ? TypeOfSchema<T, S>
      : unknown;

type TypeOfSchema<T, S> = T extends 'string'
  ? string
  : T extends 'integer' | 'number'
    ? number
    : T extends 'boolean'
      ? boolean
      : T extends 'null'
        ? null
        : T extends 'array'
          ? S extends { readonly items: infer I }
            ? FromSchema<I>[]
            : unknown[]
          : T extends 'object'
            ? ObjectOfSchema<S>
            : never;

type PresentKeys<S, P> = {
  [K in keyof P]: P[K] extends { readonly default: unknown }
    ? K
    : S extends { readonly required: readonly (infer R)[] }
      ? K extends R
        ? K
        : never
      : never;
}[keyof P];

type Flatten<T> = { [K in keyof T]: T[K] };

type ObjectOfSchema<S> = S extends { readonly properties: infer P }
  ? Flatten<
      { -readonly [K in PresentKeys<S, P> & keyof P]: FromSchema<P[K]> } & {
        -readonly [K in Exclude<keyof P, PresentKeys<S, P>>]?: FromSchema<P[K]>;
      }
    > &
      (S extends { readonly additionalProperties: infer A extends object } ? Record<string, FromSchema<A>> : unknown)
  : S extends { readonly additionalProperties: infer A extends object }
    ? Record<string, FromSchema<A>>
    : Record<string, unknown>;

/** The kernel's effective config, as validated and with defaults applied. */
export type NucleusConfig = FromSchema<typeof CORE_CONFIG_SCHEMA>;

/** The core schema with each plugin's schema placed at `plugin.<id>`; the result is a fresh, mutable object. */
export function configSchemaWithPlugins(pluginSchemas: Readonly<Record<string, JsonSchema>> = {}): JsonSchema {
  const schema = structuredClone(CORE_CONFIG_SCHEMA) as unknown as {
    properties: { plugin: { properties: Record<string, unknown> } };
  };
  for (const [id, pluginSchema] of Object.entries(pluginSchemas)) {
    // A plugin section is always an object; its schema may leave `default` out, which would leave the section missing.
    schema.properties.plugin.properties[id] = { type: 'object', default: {}, ...structuredClone(pluginSchema) };
  }
  return schema as unknown as JsonSchema;
}

/** One settable key of the config: a schema node that is not an object with `properties`. */
export interface ConfigKey {
  /** Dotted path, e.g. `queue.highWatermark` or `plugin.backend-cpu.intraOpNumThreads`. */
  readonly path: string;
  readonly segments: readonly string[];
  readonly schema: JsonSchema;
  /** Whether the key may be changed with a runtime patch. */
  readonly runtime: boolean;
  /** Whether the value (or any part of it) is redacted. */
  readonly secret: boolean;
}

/** Every settable key of a schema, in schema order; objects with `properties` are folders, everything else is a key. */
export function configKeys(schema: JsonSchema): ConfigKey[] {
  const keys: ConfigKey[] = [];
  const walk = (node: JsonSchema, segments: string[]): void => {
    for (const [name, child] of Object.entries(node.properties ?? {})) {
      const path = [...segments, name];
      if (child.properties !== undefined) {
        walk(child, path);
      } else {
        keys.push({
          path: path.join('.'),
          segments: path,
          schema: child,
          runtime: child['x-runtime'] === true,
          secret: containsSecret(child),
        });
      }
    }
  };
  walk(schema, []);
  return keys;
}

/** True when a schema or anything under it is marked `x-secret`. */
export function containsSecret(schema: JsonSchema): boolean {
  if (schema['x-secret'] === true) return true;
  if (schema.items !== undefined && containsSecret(schema.items)) return true;
  if (typeof schema.additionalProperties === 'object' && containsSecret(schema.additionalProperties)) return true;
  return Object.values(schema.properties ?? {}).some(containsSecret);
}

/**
 * Rules that span keys, which draft-07 cannot say. Kept beside the schema so a patch and a load see
 * the same rules.
 */
export function configInvariantIssues(
  config: Readonly<Record<string, unknown>>,
): { path: string; message: string; related?: string[] }[] {
  // Runs on a config that may also break the schema (so every problem is reported at once): read values defensively.
  const issues: { path: string; message: string; related?: string[] }[] = [];
  const queue = config.queue as { highWatermark?: unknown; lowWatermark?: unknown } | undefined;
  if (
    typeof queue?.highWatermark === 'number' &&
    typeof queue.lowWatermark === 'number' &&
    queue.lowWatermark >= queue.highWatermark
  ) {
    issues.push({
      path: 'queue.lowWatermark',
      message: `queue.lowWatermark (${queue.lowWatermark}) must be below queue.highWatermark (${queue.highWatermark})`,
      related: ['queue.highWatermark'],
    });
  }
  const bounds = (config.tuning as { bounds?: Record<string, { min?: unknown; max?: unknown }> } | undefined)?.bounds;
  for (const [knob, b] of Object.entries(bounds ?? {})) {
    if (typeof b?.min === 'number' && typeof b.max === 'number' && b.min > b.max) {
      issues.push({
        path: `tuning.bounds.${knob}.min`,
        message: `tuning.bounds.${knob}.min (${b.min}) is above tuning.bounds.${knob}.max (${b.max}); swap them`,
        related: [`tuning.bounds.${knob}.max`],
      });
    }
  }
  const models = Array.isArray(config.models) ? (config.models as unknown[]) : [];
  const seen = new Set<string>();
  for (const [i, model] of models.entries()) {
    if (typeof model !== 'object' || model === null || typeof (model as { name?: unknown }).name !== 'string') continue;
    const { name, version } = model as { name: string; version?: string };
    const id = `${name}@${version ?? ''}`;
    if (seen.has(id)) {
      const label = version === undefined ? `"${name}"` : `"${name}" version "${version}"`;
      issues.push({ path: `models.${i}`, message: `models.${i}: model ${label} is listed twice` });
    }
    seen.add(id);
  }
  return issues;
}
