import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import OpenAI from 'openai';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { followServer, stopServer } from '../helpers/server-child.js';
import { ORACLE_DIR, requireOracle } from '../llm-formats/llm-module.js';
import { ORACLE_STEMS, exactRef, llamaCppRef, type RefPrompt } from '../llm-formats/oracle-refs.js';

// `nucleus serve` on the oracle GGUFs, through the official openai client: the models answer what llama.cpp answers
// wherever exact arithmetic on the same weights agrees with it (the README's exact references tell where), and
// Qwen2's chat prompt is its own template rendered as llama.cpp renders it.

const ADMIN = 'admin-key-oracle-0123456789';
const GENERATED = 64;

/** The models given on the command line, by served name. */
const SERVED = { l3: 'llama3-tiny-F16', q2: 'qwen2-tiny-F16', z: 'quant-zoo-Q4_K_M' } as const;

const prompt = (ref: { prompts: RefPrompt[] }, name: string): RefPrompt => ref.prompts.find((p) => p.name === name)!;

/**
 * How many leading greedy tokens of llama.cpp a float32 runtime reproduces: all the steps where the exact reference's
 * own greedy path is llama.cpp's, shortened so that their bytes end on a whole UTF-8 character; and that text.
 */
function llamaCppPrefix(stem: string): { tokens: number; text: string; ids: number[] } {
  const cpp = prompt(llamaCppRef(stem), 'short');
  let tokens = prompt(exactRef(stem), 'short').first_step_differing_from_llama_cpp ?? GENERATED;
  for (; tokens > 0; tokens--) {
    const bytes = Buffer.from(
      cpp.steps
        .slice(0, tokens)
        .map((s) => s.piece_hex!)
        .join(''),
      'hex',
    );
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      return { tokens, text, ids: cpp.generated_ids.slice(0, tokens) };
    } catch {
      // ends inside a character: one token fewer
    }
  }
  return { tokens: 0, text: '', ids: [] };
}

interface NativeAnswer {
  choices: { text: string; token_ids: number[]; finish_reason: string }[];
  usage: { prompt_tokens: number; completion_tokens: number };
}

describe('nucleus serve on the oracle GGUFs answers as llama.cpp does, through the official openai client', function () {
  this.timeout(300_000);
  let child: ChildProcess | undefined;
  let cacheDir: string | undefined;
  let url: string;
  let client: OpenAI;

  before(async function () {
    requireOracle(this);
    cacheDir = tempDir('oracle-serve');
    const models = Object.entries(SERVED).flatMap(([name, stem]) => [
      '--model',
      `${name}=${join(ORACLE_DIR, `${stem}.gguf`)}`,
    ]);
    child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch', ...models], {
      cwd: REPO_ROOT,
      // A cache of its own: the graphs are built from the files by the code under test, not taken from earlier runs.
      env: { PATH: process.env.PATH ?? '', NUCLEUS_ADMIN_KEY: ADMIN, NUCLEUS_CACHE_DIR: cacheDir },
    });
    url = await followServer(child, 240_000).url;
    client = new OpenAI({ baseURL: `${url}/v1`, apiKey: ADMIN, maxRetries: 0 });
  });
  after(async () => {
    try {
      // A server that failed to start has exited already.
      if (child && child.exitCode === null && child.signalCode === null) assert.equal(await stopServer(child), 0);
    } finally {
      child?.kill('SIGKILL');
      if (cacheDir) rmSync(cacheDir, { recursive: true, force: true });
    }
  });

  /** Nucleus's own `/generate`, which answers with the token ids. */
  async function generate(body: Record<string, unknown>): Promise<NativeAnswer> {
    const res = await fetch(`${url}/generate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ temperature: 0, ...body }),
    });
    const answer = (await res.json()) as NativeAnswer;
    assert.equal(res.status, 200, JSON.stringify(answer));
    return answer;
  }

  async function adminCall(method: string, path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      ...(body !== undefined && { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.json() };
  }

  /**
   * A temperature-0 completion of the short prompt: llama.cpp's text as far as exact arithmetic follows it; where
   * that is not all 64 steps, the exact reference's 64 ids, also from the prompt given as ids.
   */
  async function answersAsTheReferences(model: string, stem: string): Promise<void> {
    const cpp = prompt(llamaCppRef(stem), 'short');
    const exact = prompt(exactRef(stem), 'short');
    const expected = llamaCppPrefix(stem);
    assert.ok(expected.tokens > 0, `${stem}: no step of llama.cpp's to compare`);
    const completion = await client.completions.create({
      model,
      prompt: cpp.prompt!,
      max_tokens: expected.tokens,
      temperature: 0,
    });
    assert.equal(completion.choices[0]!.text, expected.text, `${model} (${stem}): first ${expected.tokens} tokens`);
    assert.equal(completion.usage!.prompt_tokens, cpp.prompt_ids.length, 'the prompt tokenized as llama.cpp does');
    assert.equal(completion.usage!.completion_tokens, expected.tokens);

    if (expected.tokens >= GENERATED - 1) return; // the text covered (nearly) every step already
    // Where exact arithmetic leaves llama.cpp's path, the server (float32 by default) stays on the exact one.
    const native = await generate({ model, prompt: cpp.prompt!, max_tokens: GENERATED });
    const ids = native.choices[0]!.token_ids;
    assert.deepEqual(ids.slice(0, expected.tokens), expected.ids, `${model}: llama.cpp's ids`);
    assert.deepEqual(ids, exact.generated_ids, `${model}: the exact reference's ${GENERATED} ids`);
    // The same prompt given as llama.cpp's ids continues the same way.
    const byIds = await generate({ model, prompt: cpp.prompt_ids, max_tokens: 8 });
    assert.deepEqual(byIds.choices[0]!.token_ids, exact.generated_ids.slice(0, 8));
  }

  for (const [model, stem] of Object.entries(SERVED)) {
    it(`${model} (${stem}) continues "Once upon a time" with llama.cpp's greedy text`, async () => {
      await answersAsTheReferences(model, stem);
    });
  }

  it("q2 renders a chat with Qwen2's own template into the 26 tokens llama.cpp renders", async () => {
    const rendering = llamaCppRef(SERVED.q2).chat_template_rendering!;
    const messages = [
      { role: 'system' as const, content: 'You are a concise assistant.' },
      { role: 'user' as const, content: 'What is the capital of France?' },
    ];
    const chat = await client.chat.completions.create({ model: 'q2', messages, temperature: 0, max_tokens: 8 });
    // With <|im_start|> and <|im_end|> parsed as special tokens: 26; as text they would be 47.
    assert.equal(rendering.ids_parse_special.length, 26);
    assert.equal(chat.usage!.prompt_tokens, rendering.ids_parse_special.length);
    // The rendered prompt is those very ids: given as ids, the model continues exactly as it does the chat.
    const byIds = await generate({ model: 'q2', prompt: rendering.ids_parse_special, max_tokens: 8 });
    assert.equal(chat.choices[0]!.message.content, byIds.choices[0]!.text);
    const res = await fetch(`${url}/chat`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ model: 'q2', messages, temperature: 0, max_tokens: 8 }),
    });
    const native = (await res.json()) as NativeAnswer;
    assert.equal(res.status, 200, JSON.stringify(native));
    assert.deepEqual(native.choices[0]!.token_ids, byIds.choices[0]!.token_ids);
  });

  for (const stem of ORACLE_STEMS.filter((s) => s.startsWith('quant-zoo-'))) {
    it(`${stem} loads through the admin API and answers as the references say`, async () => {
      const name = `zoo-${stem.slice('quant-zoo-'.length)}`;
      const loaded = await adminCall('POST', '/admin/models', { name, source: join(ORACLE_DIR, `${stem}.gguf`) });
      assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
      try {
        await answersAsTheReferences(name, stem);
      } finally {
        const gone = await adminCall('DELETE', `/admin/models/${name}`);
        assert.equal(gone.status, 200, JSON.stringify(gone.body));
      }
    });
  }

  it('a run-time load may ask for int8 matmuls (its own cached graph); an unknown setting is a 400', async () => {
    const loaded = await adminCall('POST', '/admin/models', {
      name: 'zoo-int8',
      source: join(ORACLE_DIR, 'quant-zoo-Q4_0.gguf'),
      quantizedMatmul: 'int8',
    });
    assert.equal(loaded.status, 201, JSON.stringify(loaded.body));
    try {
      // Graphs are cached per setting: the int8 one beside the float32 one the earlier load built.
      const graphs = readdirSync(join(cacheDir!, 'gguf')).filter((d) => !d.includes('.tmp-'));
      assert.ok(
        graphs.some((d) => /-a4-r\d+$/.test(d)),
        `an int8 graph among ${graphs.join(', ')}`,
      );
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
        body: JSON.stringify({ model: 'zoo-int8', prompt: 'Once upon a time', max_tokens: 4, temperature: 0 }),
      });
      assert.equal(res.status, 200);
    } finally {
      await adminCall('DELETE', '/admin/models/zoo-int8');
    }
    const refused = await adminCall('POST', '/admin/models', {
      name: 'zoo-bad',
      source: join(ORACLE_DIR, 'quant-zoo-Q4_0.gguf'),
      quantizedMatmul: 'int4',
    });
    assert.equal(refused.status, 400, JSON.stringify(refused.body));
  });
});
