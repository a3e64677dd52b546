// The process `loadSafetensors` builds a graph in (forked by runBuildWorker).
import { serveBuildWorker } from '@nucleus/sdk/llm';
import { ensureSafetensorsGraph, type SafetensorsGraphJob } from './load-safetensors.js';

serveBuildWorker((job: SafetensorsGraphJob, progress) => ensureSafetensorsGraph(job, progress));
