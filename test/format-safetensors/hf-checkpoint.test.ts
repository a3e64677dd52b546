import assert from 'node:assert/strict';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inspectCheckpoint } from '@nucleus/plugin-format-safetensors';
import { UnsupportedModelError } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { writeTinyLlamaCheckpoint } from './safetensors-fixtures.js';

describe('config.json of a checkpoint: what the Llama graph is built from, and what is refused', () => {
  const dir = tempDir('hf-checkpoint');
  after(() => rmSync(dir, { recursive: true, force: true }));
  let n = 0;
  /** The tiny Llama's checkpoint with config.json fields replaced. */
  const withConfig = (fields: Record<string, unknown>): string => {
    const folder = writeTinyLlamaCheckpoint(join(dir, `c${n++}`));
    const path = join(folder, 'config.json');
    writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ...fields }));
    return folder;
  };
  const problems = (folder: string): string => {
    try {
      inspectCheckpoint(folder);
    } catch (err) {
      assert.ok(err instanceof UnsupportedModelError, String(err));
      assert.deepEqual([err.status, err.code], [400, 'unsupported_model']);
      return err.message;
    }
    assert.fail('inspected without complaint');
  };

  it('reads the architecture facts; Mistral and Qwen2 configs load the same tensors', () => {
    const llama = inspectCheckpoint(withConfig({}));
    assert.deepEqual(
      [llama.architecture, llama.arch.numHeads, llama.arch.numKvHeads, llama.arch.headDim, llama.tied],
      ['LlamaForCausalLM', 4, 2, 16, false],
    );
    // Inside its sliding window Mistral's attention is full attention: the context stops at the window.
    const mistral = inspectCheckpoint(withConfig({ architectures: ['MistralForCausalLM'], sliding_window: 128 }));
    assert.deepEqual([mistral.architecture, mistral.arch.maxPositions], ['MistralForCausalLM', 128]);
    const qwen = inspectCheckpoint(
      withConfig({ architectures: ['Qwen2ForCausalLM'], sliding_window: 128, use_sliding_window: false }),
    );
    assert.deepEqual([qwen.architecture, qwen.arch.maxPositions], ['Qwen2ForCausalLM', 256]);
  });

  it('RoPE scaling: linear divides every frequency, llama3 as transformers computes it, others refused', () => {
    const linear = inspectCheckpoint(withConfig({ rope_scaling: { type: 'linear', factor: 4 } }));
    assert.deepEqual([...linear.ropeFreqFactors!], Array(8).fill(4));
    // Head dim 16, theta 10000: wavelengths 2π·10000^(i/8) = 6.3 … 19869; with original context 2048, high factor 4
    // and low 1, pairs 0-3 (below 512) keep their frequency, 4-5 are smoothed, 6-7 (above 2048) divided by 8.
    const llama3 = inspectCheckpoint(
      withConfig({
        rope_scaling: {
          rope_type: 'llama3',
          factor: 8,
          low_freq_factor: 1,
          high_freq_factor: 4,
          original_max_position_embeddings: 2048,
        },
      }),
    );
    const f = [...llama3.ropeFreqFactors!];
    assert.deepEqual(f.slice(0, 4), [1, 1, 1, 1]);
    // Pair 4: wavelength 628.3, smooth = (2048 / 628.3 − 1) / 3, factor 1 / ((1 − smooth) / 8 + smooth).
    assert.ok(Math.abs(f[4]! - 1.27548) < 1e-4, `pair 4: ${f[4]}`);
    assert.ok(f[5]! > f[4]! && f[5]! < 8, `pair 5: ${f[5]}`);
    assert.deepEqual(f.slice(6), [8, 8]);
    assert.match(
      problems(withConfig({ rope_scaling: { rope_type: 'yarn', factor: 4 } })),
      /RoPE scaling "yarn" \(supported: none, linear, llama3\)/,
    );
  });

  it('lists every problem at once: activation, head split, extra and wrongly shaped tensors', () => {
    const message = problems(withConfig({ hidden_act: 'gelu', num_key_value_heads: 3, intermediate_size: 96 }));
    assert.match(message, /hidden_act "gelu"/);
    assert.match(message, /4 attention heads do not split into 3 key\/value heads/);
    assert.match(message, /tensor model\.layers\.0\.mlp\.gate_proj\.weight is \[128, 64\], expected \[96, 64\]/);
    assert.match(
      problems(withConfig({ architectures: ['PhiForCausalLM'] })),
      /architecture "PhiForCausalLM" in config\.json \(supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM\)/,
    );
  });
});
