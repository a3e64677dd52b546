import { definePlugin, ExtensionPoints, optionalService, ServiceRefs, type PluginContext } from '@nucleus/sdk';
import { BatchJobRunner, type BatchJobSettings } from './batch-job-runner.js';

export { BatchJobRunner, isErrorLine, type BatchJobSettings, type JobRunOptions } from './batch-job-runner.js';
export { CheckpointedOutput } from './checkpointed-output.js';
export { countRows, inputFormat, readRows, type InputRow, type RowError } from './row-source.js';

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
  },
  activate(ctx: PluginContext<BatchJobsConfig>, { inference, generation }) {
    const runner = new BatchJobRunner({ inference, generation }, () => ctx.config);
    ctx.contribute(ExtensionPoints.batchRunner, runner);
  },
});
