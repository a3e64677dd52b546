import { homedir } from 'node:os';
import { join } from 'node:path';
import {
  definePlugin,
  ExtensionPoints,
  NucleusError,
  optionalService,
  ServiceRefs,
  type PluginContext,
} from '@nucleus/sdk';
import { BatchJobRunner, type BatchJobSettings } from './batch-job-runner.js';
import { BatchJobs } from './batch-jobs.js';
import { kserveBatchRoutes, openAiBatchRoutes } from './batch-routes.js';
import { BatchStore } from './batch-store.js';
import { InteractiveTraffic } from './interactive-traffic.js';

export { BatchJobRunner, isErrorLine, type BatchJobSettings, type JobRunOptions } from './batch-job-runner.js';
export { CheckpointedOutput } from './checkpointed-output.js';
export { countRows, inputFormat, readRows, type InputRow, type RowError } from './row-source.js';

/** How often a job resumed at start-up looks whether the server has finished starting. */
const STARTED_POLL_MS = 100;

/** The batch-jobs plugin's config section (`plugin.batch-jobs`). */
export interface BatchJobsConfig extends BatchJobSettings {
  dir: string | null;
  maxFileBytes: number;
  concurrentJobs: number;
}

/** Offline batch jobs: the runner `nucleus batch run` uses, and the job API over HTTP. */
export default definePlugin({
  deps: {
    inference: optionalService(ServiceRefs.inference),
    generation: optionalService(ServiceRefs.generation),
    readiness: optionalService(ServiceRefs.readiness),
    // Present only where an HTTP server serves routes: `nucleus batch run` has none, and runs no server's jobs.
    routes: optionalService(ServiceRefs.routes),
  },
  async activate(ctx: PluginContext<BatchJobsConfig>, { inference, generation, readiness, routes }) {
    const traffic = new InteractiveTraffic(ctx.events);
    ctx.onDispose(() => traffic.close());
    // The yield keys change at run time: read per chunk.
    const runtime = (key: string) => ctx.configValue(`plugin.${ctx.id}.${key}`);
    const settings = (): BatchJobSettings => ({
      ...ctx.config,
      yieldToInteractive: (runtime('yieldToInteractive') ?? ctx.config.yieldToInteractive) as boolean,
      yieldMaxWaitMs: (runtime('yieldMaxWaitMs') ?? ctx.config.yieldMaxWaitMs) as number,
    });
    const runner = new BatchJobRunner({ inference, generation }, settings, traffic);
    ctx.contribute(ExtensionPoints.batchRunner, runner);
    const cacheDir = ctx.configValue('cache.dir');
    const dir =
      ctx.config.dir ??
      (typeof cacheDir === 'string' && cacheDir !== ''
        ? join(cacheDir, 'batches')
        : join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'nucleus', 'batches'));
    const started = async (signal: AbortSignal): Promise<void> => {
      while (readiness?.report().status === 'starting' && !signal.aborted)
        await new Promise((r) => setTimeout(r, STARTED_POLL_MS));
    };
    const jobs = new BatchJobs(new BatchStore(dir), runner, () => ctx.config.concurrentJobs, ctx.logger, started);
    if (routes) await jobs.start();
    ctx.onDispose(() => jobs.stop());
    for (const route of openAiBatchRoutes(jobs, () => ctx.config.maxFileBytes))
      ctx.contribute(ExtensionPoints.routes, route, { name: `openai-batches/${route.method} ${route.path}` });
    const tensor = () => {
      if (!inference) throw new NucleusError(503, 'no_engine', 'this server runs no tensor models');
      return inference;
    };
    for (const route of kserveBatchRoutes(jobs, tensor))
      ctx.contribute(ExtensionPoints.routes, route, { name: `kserve-batches/${route.method} ${route.path}` });
  },
});
