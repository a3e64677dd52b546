import { badRequest } from './errors.js';
import type { GenerateRequest } from './generation.js';

type Kind = 'integer' | 'number' | 'boolean' | 'strings';

/**
 * The sampling parameters a KServe v2 / Triton generate request may give, under vLLM's and TensorRT-LLM's names, and
 * the GenerateRequest field each sets. `exclude_input_in_output` steers the answer rather than sampling.
 */
export const GENERATE_PARAMETERS: Readonly<
  Record<string, { key: keyof GenerateRequest | 'excludeInput'; kind: Kind }>
> = {
  max_tokens: { key: 'maxTokens', kind: 'integer' },
  temperature: { key: 'temperature', kind: 'number' },
  top_p: { key: 'topP', kind: 'number' },
  top_k: { key: 'topK', kind: 'integer' },
  seed: { key: 'seed', kind: 'integer' },
  random_seed: { key: 'seed', kind: 'integer' },
  stop: { key: 'stop', kind: 'strings' },
  stop_words: { key: 'stop', kind: 'strings' },
  repetition_penalty: { key: 'repetitionPenalty', kind: 'number' },
  frequency_penalty: { key: 'frequencyPenalty', kind: 'number' },
  presence_penalty: { key: 'presencePenalty', kind: 'number' },
  ignore_eos: { key: 'ignoreEos', kind: 'boolean' },
  exclude_input_in_output: { key: 'excludeInput', kind: 'boolean' },
};

function fits(value: unknown, kind: Kind): boolean {
  switch (kind) {
    case 'integer':
      return Number.isSafeInteger(value);
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'strings':
      return typeof value === 'string' || (Array.isArray(value) && value.every((s) => typeof s === 'string'));
  }
}

/**
 * One generate parameter, checked: the GenerateRequest field it sets and its value, or undefined when `name` is not a
 * generate parameter (each protocol decides what an unknown name means). 400 naming `field` for a value of the wrong
 * type. A stop string may come alone (TensorRT-LLM's `stop_words`) or as a list (vLLM's `stop`).
 */
export function generateParameter(
  name: string,
  value: unknown,
  field: string,
): { key: keyof GenerateRequest | 'excludeInput'; value: unknown } | undefined {
  const known = GENERATE_PARAMETERS[name];
  if (!known) return undefined;
  if (!fits(value, known.kind))
    throw badRequest(
      'invalid_parameter',
      `${field} must be ${known.kind === 'strings' ? 'a string or a list of strings' : `a ${known.kind}`}, got ${JSON.stringify(value)}`,
      field,
    );
  if (known.kind === 'strings' && typeof value === 'string')
    return { key: known.key, value: value === '' ? [] : [value] };
  return { key: known.key, value };
}

/** vLLM's `sampling_parameters`: the parameters as JSON text, parsed; 400 unless it is a JSON object. */
export function samplingParameters(text: unknown): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = typeof text === 'string' ? JSON.parse(text) : undefined;
  } catch {
    parsed = undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw badRequest(
      'invalid_parameter',
      `sampling_parameters must be a JSON object as text, got ${JSON.stringify(typeof text === 'string' ? text.slice(0, 80) : text)}`,
      'sampling_parameters',
    );
  return parsed as Record<string, unknown>;
}
