import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The chat template of a Hugging Face model folder, where transformers keeps it: `tokenizer_config.json`'s
 * `chat_template` (a string, or a list of named ones: `default` wins), or, newer, `chat_template.jinja` or
 * `chat_template.json` beside it. Undefined when the folder has none.
 */
export async function hfChatTemplate(
  dir: string,
  tokenizerConfig: Record<string, unknown>,
): Promise<string | undefined> {
  const t = tokenizerConfig.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t as { name?: string; template?: string }[];
    return (named.find((x) => x.name === 'default') ?? named[0])?.template;
  }
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) return readFile(jinja, 'utf8');
  const jsonFile = join(dir, 'chat_template.json');
  if (existsSync(jsonFile)) {
    const parsed = JSON.parse(await readFile(jsonFile, 'utf8')) as { chat_template?: unknown };
    if (typeof parsed.chat_template === 'string') return parsed.chat_template;
  }
  return undefined;
}

/** A config.json / generation_config.json token id field (`eos_token_id: 2` or `[128001, 128009]`) as a list. */
export function hfTokenIds(v: unknown): number[] {
  if (typeof v === 'number') return [v];
  if (Array.isArray(v)) return v.filter((x): x is number => typeof x === 'number');
  return [];
}
