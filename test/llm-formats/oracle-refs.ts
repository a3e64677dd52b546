// The oracle models' reference files and the comparisons their README prescribes ("How to compare"): llama.cpp's
// outputs (`refs/<stem>.json`) and the exact-arithmetic ones (`refs/<stem>.exact.json`), step by step.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ORACLE_DIR } from './llm-module.js';

/** Every GGUF the oracle ships, by stem (the README's file table). */
export const ORACLE_STEMS = [
  'llama3-tiny-F16',
  'qwen2-tiny-F16',
  'quant-zoo-F32',
  'quant-zoo-Q8_0',
  'quant-zoo-Q6_K',
  'quant-zoo-Q5_K_M',
  'quant-zoo-Q4_K_M',
  'quant-zoo-Q3_K_M',
  'quant-zoo-Q2_K',
  'quant-zoo-Q5_1',
  'quant-zoo-Q5_0',
  'quant-zoo-Q4_1',
  'quant-zoo-Q4_0',
  'quant-zoo-Q5_K-pure',
  'quant-zoo-Q4_K-pure',
  'quant-zoo-Q3_K-pure',
  'quant-zoo-Q2_K-pure',
] as const;

/** One greedy step of a reference: the chosen id, the five best with their log-probabilities and raw logits. */
export interface RefStep {
  id: number;
  top5: [number, number][];
  top5_logits: number[];
  /** logit(top-1) − logit(top-2). */
  gap: number;
  piece_hex?: string;
}

/** One prompt of a reference file. */
export interface RefPrompt {
  name: string;
  prompt?: string;
  prompt_ids: number[];
  generated_ids: number[];
  steps: RefStep[];
  generated_bytes_hex?: string;
  /** Exact references only: where their own greedy path leaves llama.cpp's (null: never). */
  first_step_differing_from_llama_cpp?: number | null;
}

/** A reference file, either kind. */
export interface OracleRef {
  model_file: string;
  prompts: RefPrompt[];
  chat_template_rendering?: { rendered: string; ids_parse_special: number[]; ids_no_parse_special: number[] };
}

/** `refs/<stem>.json`: llama.cpp. */
export function llamaCppRef(stem: string): OracleRef {
  return JSON.parse(readFileSync(join(ORACLE_DIR, 'refs', `${stem}.json`), 'utf8')) as OracleRef;
}

/** `refs/<stem>.exact.json`: float64 arithmetic on the dequantized weights. */
export function exactRef(stem: string): OracleRef {
  return JSON.parse(readFileSync(join(ORACLE_DIR, 'refs', `${stem}.exact.json`), 'utf8')) as OracleRef;
}

/** The README's tolerance against llama.cpp, by how far its 8-bit activations move the numbers for that file. */
export function llamaCppTolerance(stem: string): number {
  if (stem === 'quant-zoo-F32') return 0.05;
  if (stem === 'llama3-tiny-F16' || stem === 'qwen2-tiny-F16') return 0.5;
  return 1.5;
}

/** The ggml type of every tensor of an oracle GGUF, by tensor name (`MANIFEST.json`). */
export function tensorTypes(stem: string): Map<string, string> {
  const manifest = JSON.parse(readFileSync(join(ORACLE_DIR, 'MANIFEST.json'), 'utf8')) as {
    gguf: { file: string; tensor_types: Record<string, string> }[];
  };
  const entry = manifest.gguf.find((g) => g.file === `${stem}.gguf`);
  if (!entry) throw new Error(`MANIFEST.json lists no ${stem}.gguf`);
  return new Map(Object.entries(entry.tensor_types));
}

/** Tolerance of a float32 runtime against the exact reference. */
export const EXACT_TOLERANCE = 1e-3;

/** How teacher-forced logits compare with a reference's steps. */
export interface StepComparison {
  /** Largest |(logit(t) − logit(top1)) − reference's| over the 5 reference tokens of every step. */
  maxDiff: number;
  /** Largest |log-probability − reference's| of those tokens (log-softmax over the whole vocabulary). */
  maxLogprobDiff: number;
  /** Steps whose argmax is not the reference's id although its gap exceeds `gapAbove`. */
  argmaxMisses: { step: number; got: number; want: number; gap: number }[];
  /** Where the largest difference was, for the failure message. */
  worst: { step: number; token: number; got: number; want: number };
}

/** log Σ exp over a logit row, in double precision. */
export function logSumExp(row: Float32Array): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) if (row[i]! > max) max = row[i]!;
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return max + Math.log(sum);
}

/** Index of the largest value (first on ties). */
export function argmaxOf(row: Float32Array): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

/**
 * Compares teacher-forced logits with a reference's steps: `rowAt(k)` gives the logits that predict generated token
 * k. For each step, `logit(t) − logit(top1)` over the reference's five tokens (top1 = its first) against the same
 * differences of `top5_logits`, and the log-probabilities against `top5`; the argmax must be the reference's id
 * wherever its gap exceeds `gapAbove`.
 */
export function compareSteps(
  steps: readonly RefStep[],
  rowAt: (k: number) => Float32Array,
  gapAbove: number,
): StepComparison {
  const out: StepComparison = {
    maxDiff: 0,
    maxLogprobDiff: 0,
    argmaxMisses: [],
    worst: { step: -1, token: -1, got: 0, want: 0 },
  };
  steps.forEach((step, k) => {
    const row = rowAt(k);
    const lse = logSumExp(row);
    const top1 = step.top5[0]![0];
    step.top5.forEach(([token, logprob], j) => {
      const got = row[token]! - row[top1]!;
      const want = step.top5_logits[j]! - step.top5_logits[0]!;
      const d = Math.abs(got - want);
      if (d > out.maxDiff) {
        out.maxDiff = d;
        out.worst = { step: k, token, got, want };
      }
      out.maxLogprobDiff = Math.max(out.maxLogprobDiff, Math.abs(row[token]! - lse - logprob));
    });
    const got = argmaxOf(row);
    if (step.gap > gapAbove && got !== step.id) out.argmaxMisses.push({ step: k, got, want: step.id, gap: step.gap });
  });
  return out;
}

/** How many leading steps of a reference have a gap of at least `minGap` (ids are comparable up to there). */
export function stepsBeforeGapBelow(steps: readonly RefStep[], minGap: number): number {
  const k = steps.findIndex((s) => s.gap < minGap);
  return k < 0 ? steps.length : k;
}

/** Index of the first difference of two id lists (their common length when one is a prefix of the other), or -1. */
export function firstDifference(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}
