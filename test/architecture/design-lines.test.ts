import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const path = join(dir, d.name);
    if (d.isDirectory()) return sources(path);
    return d.name.endsWith('.ts') ? [path] : [];
  });
}

// Every line of `files` that matches `pattern`, as `file:line: text`.
function matches(files: string[], pattern: RegExp): string[] {
  return files.flatMap((file) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .flatMap((line, i) => (pattern.test(line) ? [`${relative(REPO_ROOT, file)}:${i + 1}: ${line.trim()}`] : [])),
  );
}

describe('the line between the kernel, core and the plugins', () => {
  const core = sources(join(REPO_ROOT, 'core', 'src'));

  it('kernel.ts imports nothing under engine/', () => {
    const kernel = join(REPO_ROOT, 'core', 'src', 'kernel', 'kernel.ts');
    assert.deepEqual(matches([kernel], /from '[^']*engine\//), []);
    // The grep itself finds what it looks for: the composition root does import the engines.
    assert.notDeepEqual(matches([join(REPO_ROOT, 'core', 'src', 'nucleus.ts')], /from '[^']*engine\//), []);
  });

  it('nothing under core/src names GGUF, llama2.c or a tokenizer implementation', () => {
    const named =
      /gguf|llama2\.?c|sentencepiece|gpt2[-_ ]?bpe|\bbpe\b|HfTokenizer|@huggingface\/tokenizers|createTokenizer|byte-?level/i;
    assert.deepEqual(matches(core, named), []);
    // And the pattern finds them where they now live.
    assert.notDeepEqual(matches(sources(join(REPO_ROOT, 'plugins', 'format-gguf', 'src')), named), []);
  });
});
