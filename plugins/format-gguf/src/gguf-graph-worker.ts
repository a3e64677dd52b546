// The worker thread `loadGguf` builds a graph in.
import { serveBuildWorker } from '@nucleus/sdk/llm';
import { ensureGgufGraph, type GgufGraphJob } from './load-gguf.js';

serveBuildWorker((job: GgufGraphJob, progress) => ensureGgufGraph(job, progress));
