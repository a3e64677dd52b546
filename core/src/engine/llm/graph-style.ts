import { CPU_BACKEND } from '../backend-selector.js';

/** How a Llama graph Nucleus builds runs its attention and KV cache (see `llama-graph.ts`). */
export type GraphStyle = 'generic' | 'contrib';

/** Which graph style a model is served in, and why. */
export interface GraphStyleChoice {
  style: GraphStyle;
  reason: string;
}

/**
 * The one place the generation engine decides a model's graph style. An explicit `models[].graphStyle` wins. A graph
 * Nucleus builds itself (by a format that builds it from weights, or the built-in tiny Llama) is `contrib` when its session runs on the CPU
 * backend: GroupQueryAttention over KV buffers written in place is exact and faster there than the generic graph.
 * On any other backend it is `generic`: ORT registers GroupQueryAttention on CUDA for float16/bfloat16 only, so a
 * float32 contrib graph would run its attention on the CPU. An ONNX export folder is the graph it ships: `generic`.
 */
export function chooseGraphStyle(model: {
  configured?: GraphStyle;
  builtByNucleus: boolean;
  backend: string;
}): GraphStyleChoice {
  if (!model.builtByNucleus) return { style: 'generic', reason: 'an ONNX export runs the graph it ships' };
  if (model.configured) return { style: model.configured, reason: 'models[].graphStyle' };
  if (model.backend === CPU_BACKEND) return { style: 'contrib', reason: 'a graph Nucleus builds, on the CPU backend' };
  return {
    style: 'generic',
    reason: `a graph Nucleus builds, on the ${model.backend} backend (its float32 GroupQueryAttention would run on the CPU)`,
  };
}
