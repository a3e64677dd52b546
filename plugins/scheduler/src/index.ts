import { definePlugin, ExtensionPoints } from '@nucleus/sdk';
import { fifo, priorityWithAging } from './queue-strategies.js';
import { leastLoaded, memoryAware, prefixAffinity, roundRobin } from './routing-strategies.js';

export { fifo, priorityWithAging } from './queue-strategies.js';
export { leastLoaded, memoryAware, prefixAffinity, roundRobin } from './routing-strategies.js';

/**
 * Contributes the built-in queue orders (`schedulerStrategy`: `scheduler.strategy` picks one) and replica routers
 * (`replicaRouter`: `workers.routing` and `workers.llmRouting` pick one).
 */
export default definePlugin<{ agingMs: number }>({
  activate(ctx) {
    for (const strategy of [fifo, priorityWithAging(ctx.config.agingMs)])
      ctx.contribute(ExtensionPoints.schedulerStrategy, strategy);
    for (const router of [roundRobin(), leastLoaded, memoryAware, prefixAffinity])
      ctx.contribute(ExtensionPoints.replicaRouter, router);
  },
});
