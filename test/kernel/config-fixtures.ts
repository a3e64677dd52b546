import { fileURLToPath } from 'node:url';
import type { JsonSchema } from '@nucleus/core/kernel/config';

/** A fixture file of the config tests, by name. */
export function fixture(name: string): string {
  // Compiled tests run from test/dist/kernel; the fixtures stay in the source tree.
  return fileURLToPath(new URL(`../../fixtures/config/${name}`, import.meta.url));
}

/** The folder of the config fixtures. */
export const FIXTURE_DIR = fixture('');

/** A plugin schema shaped like the CPU backend's, with one key of each kind. */
export const CPU_SCHEMA: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    intraOpNumThreads: {
      type: 'integer',
      minimum: 0,
      default: 0,
      description: 'Threads inside one operator; 0 lets ORT choose.',
    },
    graphOptimizationLevel: {
      type: 'string',
      enum: ['disabled', 'basic', 'extended', 'layout', 'all'],
      default: 'all',
      description: 'How hard ORT optimises the graph at load.',
    },
    allowSpinning: { type: 'boolean', default: false, description: 'Let idle threads spin.', 'x-runtime': true },
    apiToken: { type: 'string', description: 'A token the plugin sends upstream.', 'x-secret': true },
  },
};
