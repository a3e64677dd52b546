// The cases the RoPE fixtures are checked on, and the llama.cpp references `make-rope-refs.ts` stored for them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import type { RefStep } from './oracle-refs.js';
import { PHI3_ORIGINAL_CONTEXT, ROPE_FIXTURE_SHAPE, type RopeFixture } from './rope-fixtures.js';

/** Where the references are, from the repository root. */
export const ROPE_REFS_PATH = 'test/fixtures/llm-rope/llama-cpp-refs.json';

/** One fixture run in one context size. */
export interface RopeCase {
  name: string;
  fixture: RopeFixture;
  /** llama.cpp's context; for Phi-3 it picks the LongRoPE factors, as Nucleus's `maxContext` does. */
  contextSize: number;
  promptIds: number[];
}

/** One case's llama.cpp run. */
export interface RopeRef {
  name: string;
  prompt_ids: number[];
  generated_ids: number[];
  steps: RefStep[];
}

/** The stored file. */
export interface RopeRefs {
  llama_cpp: string;
  cases: RopeRef[];
}

// A prompt of `n` ids after BOS (1), drawn from [lo, hi) by a fixed LCG.
function prompt(n: number, lo: number, hi: number, seed: number): number[] {
  let x = seed >>> 0;
  const ids = [1];
  for (let i = 0; i < n; i++) {
    x = (x * 1664525 + 1013904223) >>> 0;
    ids.push(lo + (x % (hi - lo)));
  }
  return ids;
}

/** Every case: YaRN on Llama and Qwen2 past the original context, Phi-3 with its long and its short factors. */
export function ropeCases(): RopeCase[] {
  const { context } = ROPE_FIXTURE_SHAPE;
  // 150 prompt ids + 64 generated run past YaRN's original 128 positions; the test vocabulary's text pieces start at 4.
  return [
    { name: 'llama-yarn', fixture: 'llama-yarn', contextSize: context, promptIds: prompt(150, 4, 281, 7) },
    { name: 'qwen2-yarn', fixture: 'qwen2-yarn', contextSize: context, promptIds: prompt(150, 4, 281, 8) },
    // Phi-3's ordinary tokens are below 32000.
    { name: 'phi3-long', fixture: 'phi3-longrope', contextSize: context, promptIds: prompt(120, 3, 32000, 9) },
    {
      name: 'phi3-short',
      fixture: 'phi3-longrope',
      contextSize: PHI3_ORIGINAL_CONTEXT,
      promptIds: prompt(120, 3, 32000, 10),
    },
  ];
}

/** The stored references. */
export function ropeRefs(): RopeRefs {
  return JSON.parse(readFileSync(join(REPO_ROOT, ROPE_REFS_PATH), 'utf8')) as RopeRefs;
}
