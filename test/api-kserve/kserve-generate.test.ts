import { strict as assert } from 'node:assert';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel, type TestResponse } from '@nucleus/sdk/testing';
import { STORIES_DIR } from '../llm-formats/llm-module.js';
import { pluginDir } from '../observability/helpers.js';
import { ADMIN_KEY, API_KSERVE, call, errorOf } from './kserve-fixtures.js';

interface GenerateResponse {
  model_name: string;
  model_version: string;
  text_output: string;
}

const LLM_METADATA = {
  versions: ['1'],
  platform: 'nucleus_llm',
  inputs: [
    { name: 'text_input', datatype: 'BYTES', shape: [1] },
    { name: 'stream', datatype: 'BOOL', shape: [1] },
    { name: 'sampling_parameters', datatype: 'BYTES', shape: [1] },
    { name: 'exclude_input_in_output', datatype: 'BOOL', shape: [1] },
  ],
  outputs: [{ name: 'text_output', datatype: 'BYTES', shape: [-1] }],
};

/** The `data:` events of an SSE body, parsed; fails on any other kind of line. */
function sseEvents(text: string): unknown[] {
  const events: unknown[] = [];
  for (const frame of text.split('\n\n').filter((f) => f !== '')) {
    assert.match(frame, /^data: /, `a data-only event: ${JSON.stringify(frame)}`);
    events.push(JSON.parse(frame.slice('data: '.length)));
  }
  return events;
}

async function generate(kit: TestKernel, model: string, body: unknown, path = 'generate'): Promise<TestResponse> {
  return call(kit, `/v2/models/${model}/${path}`, { method: 'POST', body });
}

/** The greedy completion of the engine itself, for reference. */
async function engineGreedy(kit: TestKernel, model: string, prompt: string, maxTokens: number): Promise<string> {
  let text = '';
  for await (const e of await kit.kernel.generation.generate({ model, prompt, maxTokens, temperature: 0 }))
    if (e.type !== 'done') text += e.text;
  return text;
}

describe('KServe v2 and native listings of LLMs, and the generate extension (built-in tiny-llama)', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({ plugins: [API_KSERVE], env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY } });
  });
  after(() => kit.stop());

  it('GET /models and the repository index list the LLM and the embedding model with their kind, state and context', async () => {
    const models = ((await call(kit, '/models')).body as { models: Array<Record<string, unknown>> }).models;
    const llm = models.find((m) => m.name === 'tiny-llama');
    assert.ok(llm, JSON.stringify(models.map((m) => m.name)));
    assert.equal(llm.kind, 'llm');
    assert.ok(llm.state === 'idle' || llm.state === 'ready', String(llm.state));
    assert.equal(llm.maxContext, kit.kernel.generation.get('tiny-llama').maxContext);
    assert.ok((llm.maxContext as number) > 0);
    const embedding = models.find((m) => m.name === 'bert-tiny' && m.kind === 'embedding');
    assert.ok(embedding, 'the embedding model is listed beside the tensor model of the same name');
    assert.ok(models.some((m) => m.name === 'bert-tiny' && m.kind === 'tensor'));
    const index = (await call(kit, '/v2/repository/index', { method: 'POST', body: { ready: true } })).body as Array<{
      name: string;
      version: string;
      state: string;
    }>;
    assert.deepEqual(
      index.find((r) => r.name === 'tiny-llama'),
      { name: 'tiny-llama', version: '1', state: 'READY' },
    );
    assert.equal(index.filter((r) => r.name === 'bert-tiny').length, 1, 'a name is one row');
  });

  it('GET /v2/models/{llm} gives the text_input / text_output metadata of an LLM backend; ready; unknown versions are 404', async () => {
    for (const path of ['/v2/models/tiny-llama', '/v2/models/tiny-llama/versions/1']) {
      const res = await call(kit, path);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      assert.deepEqual(res.body, { name: 'tiny-llama', ...LLM_METADATA });
    }
    const ready = await call(kit, '/v2/models/tiny-llama/ready');
    assert.deepEqual([ready.status, ready.body], [200, { name: 'tiny-llama', ready: true }]);
    const infer = await call(kit, '/v2/models/tiny-llama/infer', {
      method: 'POST',
      body: { inputs: [{ name: 'text_input', shape: [1], datatype: 'BYTES', data: ['hi'] }] },
    });
    assert.equal(infer.status, 400);
    assert.equal(errorOf(infer).code, 'model_cannot_infer');
    assert.match(errorOf(infer).message, /POST \/v2\/models\/tiny-llama\/generate/);
    const version = await call(kit, '/v2/models/tiny-llama/versions/2');
    assert.equal(version.status, 404);
    assert.equal(errorOf(version).code, 'version_not_found');
    assert.equal((await generate(kit, 'tiny-llama', { text_input: 'hi' }, 'versions/2/generate')).status, 404);
  });

  it('POST generate answers the greedy completion, the same as the engine; generate_stream sends it in data chunks', async () => {
    const prompt = 'Once upon a time';
    const expected = await engineGreedy(kit, 'tiny-llama', prompt, 12);
    assert.ok(expected.length > 0);
    const res = await generate(kit, 'tiny-llama', {
      text_input: prompt,
      parameters: { max_tokens: 12, temperature: 0 },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { model_name: 'tiny-llama', model_version: '1', text_output: expected });
    // TensorRT-LLM's ensemble takes its parameters at the top level.
    const flat = await generate(
      kit,
      'tiny-llama',
      { text_input: prompt, max_tokens: 12, temperature: 0 },
      'versions/1/generate',
    );
    assert.equal((flat.body as GenerateResponse).text_output, expected);
    const vllm = await generate(kit, 'tiny-llama', {
      text_input: prompt,
      sampling_parameters: JSON.stringify({ max_tokens: 12, temperature: 0 }),
    });
    assert.equal((vllm.body as GenerateResponse).text_output, expected);
    const withInput = await generate(kit, 'tiny-llama', {
      text_input: prompt,
      parameters: { max_tokens: 12, temperature: 0, exclude_input_in_output: false },
    });
    assert.equal((withInput.body as GenerateResponse).text_output, prompt + expected);

    const stream = await generate(
      kit,
      'tiny-llama',
      { text_input: prompt, parameters: { max_tokens: 12, temperature: 0, stream: true } },
      'generate_stream',
    );
    assert.equal(stream.status, 200);
    assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
    const chunks = sseEvents(stream.body as string) as GenerateResponse[];
    assert.ok(chunks.length > 1, `several chunks, got ${chunks.length}`);
    for (const c of chunks) assert.deepEqual(Object.keys(c), ['model_name', 'model_version', 'text_output']);
    assert.ok(chunks.every((c) => c.model_name === 'tiny-llama' && c.model_version === '1'));
    assert.equal(chunks.map((c) => c.text_output).join(''), expected);
  });

  it('applies the sampling parameters: max_tokens, stop, and the same seed giving the same text', async () => {
    const prompt = 'The little dog';
    const full = await engineGreedy(kit, 'tiny-llama', prompt, 16);
    const short = await generate(kit, 'tiny-llama', {
      text_input: prompt,
      parameters: { max_tokens: 4, temperature: 0 },
    });
    assert.equal(short.status, 200);
    assert.ok(
      full.startsWith((short.body as GenerateResponse).text_output) &&
        (short.body as GenerateResponse).text_output.length < full.length,
    );
    const stopAt = full.slice(3, 5);
    const stopped = await generate(kit, 'tiny-llama', {
      text_input: prompt,
      parameters: { max_tokens: 16, temperature: 0, stop: [stopAt] },
    });
    assert.equal((stopped.body as GenerateResponse).text_output, full.slice(0, full.indexOf(stopAt)));
    const sampled = { text_input: prompt, parameters: { max_tokens: 16, temperature: 1, top_p: 0.9, seed: 7 } };
    const a = await generate(kit, 'tiny-llama', sampled);
    const b = await generate(kit, 'tiny-llama', sampled);
    assert.equal((a.body as GenerateResponse).text_output, (b.body as GenerateResponse).text_output);
  });

  it('refuses bad requests with 400 naming the field, and unknown models with 404, on both endpoints', async () => {
    for (const path of ['generate', 'generate_stream']) {
      const cases: Array<[unknown, string, string]> = [
        [{}, 'missing_text_input', 'text_input'],
        [{ text_input: 42 }, 'invalid_text_input', 'text_input'],
        [{ text_input: 'hi', parameters: { max_tokens: 'ten' } }, 'invalid_parameter', 'parameters.max_tokens'],
        [{ text_input: 'hi', parameters: { temperature: '0' } }, 'invalid_parameter', 'parameters.temperature'],
        [{ text_input: 'hi', parameters: { stop: [1] } }, 'invalid_parameter', 'parameters.stop'],
        [{ text_input: 'hi', parameters: { beam_width: 2 } }, 'unknown_parameter', 'parameters.beam_width'],
        [{ text_input: 'hi', bad_key: 1 }, 'unknown_parameter', 'bad_key'],
        [{ text_input: 'hi', parameters: 'fast' }, 'invalid_parameter', 'parameters'],
        [{ text_input: 'hi', sampling_parameters: '{"temperature":' }, 'invalid_parameter', 'sampling_parameters'],
        [
          { text_input: 'hi', sampling_parameters: JSON.stringify({ top_p: 'high' }) },
          'invalid_parameter',
          'sampling_parameters.top_p',
        ],
      ];
      for (const [body, code, param] of cases) {
        const res = await generate(kit, 'tiny-llama', body, path);
        assert.equal(res.status, 400, `${path} ${JSON.stringify(body)}: ${JSON.stringify(res.body)}`);
        assert.deepEqual([errorOf(res).code, errorOf(res).param], [code, param], JSON.stringify(body));
      }
      const range = await generate(kit, 'tiny-llama', { text_input: 'hi', parameters: { temperature: -1 } }, path);
      assert.equal(range.status, 400);
      assert.equal(errorOf(range).param, 'temperature');
      const unknown = await generate(kit, 'no-such-llm', { text_input: 'hi' }, path);
      assert.equal(unknown.status, 404);
      assert.equal(typeof errorOf(unknown).message, 'string');
      const embedding = await generate(kit, 'bert-tiny', { text_input: 'hi' }, path);
      assert.equal(embedding.status, 400);
      assert.equal(errorOf(embedding).code, 'model_cannot_generate');
    }
  });
});

describe('the generate extension on stories260K (GGUF) agrees with /v1/completions', function () {
  this.timeout(120_000);
  const gguf = join(STORIES_DIR, 'stories260K.gguf');
  let kit: TestKernel | undefined;
  before(async function () {
    if (!existsSync(gguf)) this.skip();
    kit = await startTestKernel({
      plugins: [API_KSERVE, pluginDir('api-openai')],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      config: { models: [{ name: 'stories', path: gguf }] },
    });
  });
  after(() => kit?.stop());

  it('lists stories natively and in v2, describes it, and generates the greedy text /v1/completions gives', async () => {
    const k = kit!;
    const models = ((await call(k, '/models')).body as { models: Array<Record<string, unknown>> }).models;
    const stories = models.find((m) => m.name === 'stories');
    assert.deepEqual(
      [stories?.kind, stories?.state, stories?.maxContext],
      ['llm', 'ready', k.kernel.generation.get('stories').maxContext],
    );
    const index = (await call(k, '/v2/repository/index', { method: 'POST', body: {} })).body;
    assert.deepEqual(index, [{ name: 'stories', version: '1', state: 'READY' }]);
    const meta = await call(k, '/v2/models/stories');
    assert.deepEqual([meta.status, meta.body], [200, { name: 'stories', ...LLM_METADATA }]);

    const prompt = 'Once upon a time, there was a little girl';
    const completion = await call(k, '/v1/completions', {
      method: 'POST',
      body: { model: 'stories', prompt, max_tokens: 40, temperature: 0 },
    });
    assert.equal(completion.status, 200, JSON.stringify(completion.body));
    const expected = (completion.body as { choices: Array<{ text: string }> }).choices[0]!.text;
    assert.ok(expected.length > 20, expected);
    const res = await generate(k, 'stories', { text_input: prompt, parameters: { max_tokens: 40, temperature: 0 } });
    assert.deepEqual(
      [res.status, res.body],
      [200, { model_name: 'stories', model_version: '1', text_output: expected }],
    );
    const stream = await generate(
      k,
      'stories',
      { text_input: prompt, parameters: { max_tokens: 40, temperature: 0 } },
      'generate_stream',
    );
    assert.equal((sseEvents(stream.body as string) as GenerateResponse[]).map((c) => c.text_output).join(''), expected);
  });
});
