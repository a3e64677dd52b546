/** One knob's range and step, as the `tuning.bounds` entries share it. */
function knobBounds(
  description: string,
  type: 'integer' | 'number',
  defaults: { min: number; max: number; step: number },
  least: number,
) {
  return {
    type: 'object',
    description,
    default: {},
    additionalProperties: false,
    properties: {
      min: { type, minimum: least, description: 'The least the tuner sets.', default: defaults.min },
      max: { type, minimum: least, description: 'The most the tuner sets.', default: defaults.max },
      step: {
        type,
        ...(type === 'integer' ? { minimum: 1 } : { exclusiveMinimum: 0 }),
        description: 'How much one increase adds (decreases halve).',
        default: defaults.step,
      },
    },
  } as const;
}

/**
 * The `tuning` section of the config (see `CORE_CONFIG_SCHEMA`): the auto-tuner's switch, targets and bounds. The
 * `tuner` plugin reads it; it lives at the top level, not under `plugin.tuner`, because it tunes the core's own
 * `batching` and `scheduler` keys.
 */
export const TUNING_SCHEMA = {
  type: 'object',
  description:
    "Auto-tuning (the `tuner` plugin): each tensor model's batch size and queue delay, and " +
    '`scheduler.maxRunning` for LLMs, moved from live measurements toward a p99 target.',
  default: {},
  additionalProperties: false,
  properties: {
    enabled: {
      type: 'boolean',
      description: 'Tune while serving; off, the tuner only answers GET /server/tuning.',
      default: false,
      'x-plugin': 'tuner',
    },
    intervalMs: {
      type: 'integer',
      minimum: 50,
      description:
        'How often a window of measurements is judged; each window after a change measures only the new setting.',
      default: 5000,
    },
    targetP99Ms: {
      type: 'number',
      exclusiveMinimum: 0,
      description: 'The p99 end-to-end latency (queue plus compute) tensor models should stay under, ms.',
      default: 100,
    },
    targetItlP99Ms: {
      type: 'number',
      exclusiveMinimum: 0,
      description: 'The p99 inter-token latency generations should stay under, ms (tunes scheduler.maxRunning).',
      default: 100,
    },
    hysteresis: {
      type: 'number',
      minimum: 0,
      maximum: 0.9,
      description:
        'Knobs grow only while p99 is below target × (1 − hysteresis); they shrink once it is above the target.',
      default: 0.2,
    },
    patience: {
      type: 'integer',
      minimum: 1,
      description: 'Windows in a row a condition must hold before a knob moves.',
      default: 2,
    },
    minSamples: {
      type: 'integer',
      minimum: 1,
      description: 'Windows with fewer requests (or inter-token gaps) are not acted on.',
      default: 50,
    },
    models: {
      type: 'array',
      items: { type: 'string', minLength: 1 },
      description: 'Only these tensor models; empty: every model that batches.',
      default: [],
    },
    tuneMaxRunning: {
      type: 'boolean',
      description: "Also tune scheduler.maxRunning from the LLMs' inter-token latency.",
      default: true,
    },
    bounds: {
      type: 'object',
      description: 'The range of each knob.',
      default: {},
      additionalProperties: false,
      properties: {
        maxBatchSize: knobBounds("A tensor model's batch size.", 'integer', { min: 1, max: 64, step: 4 }, 1),
        maxQueueDelayMs: knobBounds("A tensor model's queue delay, ms.", 'number', { min: 0, max: 20, step: 1 }, 0),
        maxRunning: knobBounds('scheduler.maxRunning.', 'integer', { min: 1, max: 64, step: 2 }, 1),
      },
    },
  },
} as const;
