import { fileURLToPath } from 'node:url';
import type { BuiltinModel } from '@nucleus/sdk';
import { BERT_TINY_CONFIG } from './bert-tiny.js';
import { BUILTIN_MODELS, ensureBuiltinModels } from './ensure-builtin-models.js';
import { ensureTinyLlama, TINY_LLAMA_ARCH, TINY_LLAMA_NAME } from './tiny-llama.js';

/** The name the real, trained chat model is served under. */
export const STORIES_MODEL = 'stories260K';

/** stories260K as shipped with this plugin (MIT, from llama2.c; see the plugin's README). */
export const STORIES_GGUF = fileURLToPath(new URL('../models/stories260K.gguf', import.meta.url));

/**
 * stories260K writes stories, not answers: its chat template hands the user's words on as the story's beginning
 * (after BOS, as a plain prompt gets it), so the first chat request writes a little story.
 */
export const STORY_CHAT_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ message['content'] }}{% endif %}{% endfor %}";

// One generated model, written into the cache when first asked for: its version folder, or its graph file.
async function generated(name: string, cacheDir: string): Promise<{ dir: string; modelPath: string }> {
  const [model] = await ensureBuiltinModels(cacheDir, { names: [name] });
  return model!;
}

/** What the plugin serves when no model is configured. */
export const builtinModels: readonly BuiltinModel[] = [
  {
    name: STORIES_MODEL,
    kind: 'llm',
    description: 'stories260K: a 260K-parameter Llama trained on TinyStories (llama2.c, MIT); writes short stories',
    maxContext: 512,
    dimensions: 64,
    chatTemplate: STORY_CHAT_TEMPLATE,
    prepare: async () => STORIES_GGUF,
  },
  {
    name: TINY_LLAMA_NAME,
    kind: 'llm',
    description: 'a tiny Llama with random weights and a chat template: exercises the machinery, writes nonsense',
    maxContext: TINY_LLAMA_ARCH.maxPositions,
    dimensions: TINY_LLAMA_ARCH.hiddenSize,
    prepare: (cacheDir) => ensureTinyLlama(cacheDir),
  },
  {
    name: 'bert-tiny',
    kind: 'embedding',
    description: 'a tiny BERT-style encoder with random weights, bytes as tokens, mean pooling',
    maxContext: BERT_TINY_CONFIG.maxPositions,
    dimensions: BERT_TINY_CONFIG.hidden,
    encoder: {
      hiddenSize: BERT_TINY_CONFIG.hidden,
      maxPositions: BERT_TINY_CONFIG.maxPositions,
      vocabSize: BERT_TINY_CONFIG.vocabSize,
      pooling: 'mean',
    },
    prepare: async (cacheDir) => (await generated('bert-tiny', cacheDir)).modelPath,
  },
  ...BUILTIN_MODELS.map(
    (m): BuiltinModel => ({
      name: m.name,
      kind: 'tensor',
      description: `${m.name}: a generated tensor model with random weights`,
      prepare: async (cacheDir) => (await generated(m.name, cacheDir)).dir,
    }),
  ),
];
