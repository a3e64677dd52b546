// The process `loadGguf` builds a graph in (forked by runBuildWorker).
import { serveBuildWorker } from '@nucleus/sdk/llm';
import { ensureGgufGraph, type GgufGraphJob } from './load-gguf.js';

serveBuildWorker((job: GgufGraphJob, progress) => ensureGgufGraph(job, progress));
