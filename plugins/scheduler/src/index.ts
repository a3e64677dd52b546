import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { fifo, priorityWithAging } from './queue-strategies.js';
import { leastLoaded, memoryAware, prefixAffinity, roundRobin } from './routing-strategies.js';

export { fifo, priorityWithAging } from './queue-strategies.js';
export { leastLoaded, memoryAware, prefixAffinity, roundRobin } from './routing-strategies.js';

/** Contributes the built-in queue and routing strategies; the engine picks one by name from config. */
export default definePlugin<{ agingMs: number }>({
  activate(ctx) {
    for (const strategy of [
      fifo,
      priorityWithAging(ctx.config.agingMs),
      roundRobin(),
      leastLoaded,
      memoryAware,
      prefixAffinity,
    ]) {
      ctx.contribute(ExtensionPoints.schedulerStrategy, strategy);
    }
  },
});
