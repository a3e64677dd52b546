import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelFormats } from '@nucleus/core';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import type { Logger, ModelFormat, NucleusError } from '@nucleus/sdk';
import { startTestKernel } from '@nucleus/sdk/testing';
import { ggufFormat, llama2cFormat, loadLlm, onnxFormat, readGguf, testFormats } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { ORACLE_DIR, requireOracle, requireStories, STORIES_DIR } from './llm-module.js';

async function refusal(promise: Promise<unknown>): Promise<NucleusError> {
  return promise.then(
    () => assert.fail('it was accepted'),
    (e: unknown) => e as NucleusError,
  );
}

describe('model formats: which format loads a source', () => {
  const dir = tempDir('formats');

  it('each first-party format claims its own sources, with the engine each goes to', async function () {
    requireStories(this);
    const gguf = await testFormats.resolve(join(STORIES_DIR, 'stories260K.gguf'));
    assert.deepEqual([gguf.format?.name, gguf.match.kind, gguf.match.buildsGraph], ['gguf', 'llm', true]);
    const bin = await testFormats.resolve(join(STORIES_DIR, 'stories260K.bin'));
    assert.deepEqual([bin.format?.name, bin.match.kind, bin.match.buildsGraph], ['llama2c', 'llm', true]);
    const onnxFile = join(dir, 'model.onnx');
    writeFileSync(onnxFile, 'not parsed by detection');
    const onnx = await testFormats.resolve(onnxFile);
    assert.deepEqual([onnx.format?.name, onnx.match.kind], ['onnx', 'tensor']);
  });

  it('a source no format claims is a 400 listing the active formats and what each accepts', async () => {
    const txt = join(dir, 'model.txt');
    writeFileSync(txt, 'hello');
    const err = await refusal(testFormats.resolve(txt));
    assert.deepEqual([err.status, err.code], [400, 'unsupported_model_format']);
    assert.match(err.message, /no active model format loads .*model\.txt/);
    assert.match(
      err.message,
      /Active formats: gguf \(a \.gguf file.*\); onnx \(.*\); llama2c \(a llama2\.c \.bin checkpoint/,
    );
    const none = await refusal(new ModelFormats([]).resolve(txt));
    assert.match(none.message, /No model format plugin is active: enable one/);
  });

  it('a missing source says it does not exist, not a raw ENOENT', async () => {
    const err = await refusal(testFormats.resolve(join(dir, 'nowhere.gguf')));
    assert.deepEqual([err.status, err.code], [400, 'model_source_not_found']);
    assert.match(err.message, /nowhere\.gguf does not exist; check the path/);
  });

  it('a PyTorch pickle is refused with why and what to convert it to', async () => {
    const pth = join(dir, 'model.pth');
    writeFileSync(pth, 'PK');
    const err = await refusal(testFormats.resolve(pth));
    assert.match(
      err.message,
      /onnx: .*model\.pth is a PyTorch checkpoint: pickles are not loaded, because reading one can run arbitrary code/,
    );
    assert.match(err.message, /torch\.onnx\.export/);
  });

  it('a .bin that is not a llama2.c checkpoint is refused by the llama2c format, saying why', async () => {
    const bin = join(dir, 'weights.bin');
    writeFileSync(bin, new Uint8Array(28));
    const err = await refusal(testFormats.resolve(bin));
    assert.match(err.message, /llama2c: .*weights\.bin is a \.bin file without a llama2\.c header/);
  });

  it('a llama2.c checkpoint takes its tokenizer from the config, from beside it, or says how to give one', async function () {
    requireStories(this);
    const alone = join(dir, 'alone');
    mkdirSync(alone, { recursive: true });
    const bin = join(alone, 'stories260K.bin');
    copyFileSync(join(STORIES_DIR, 'stories260K.bin'), bin);
    const err = await refusal(loadLlm(bin, { cacheDir: join(dir, 'cache') }));
    assert.equal(err.code, 'unsupported_model');
    assert.match(
      err.message,
      /no tokenizer: set the model's "tokenizer" config key .* or put one beside the checkpoint as .*tok512\.bin or .*tokenizer\.bin/,
    );
    const configured = await loadLlm(bin, {
      cacheDir: join(dir, 'cache'),
      tokenizerPath: join(STORIES_DIR, 'tok512.bin'),
    });
    assert.equal(configured.config.vocabSize, 512);
    copyFileSync(join(STORIES_DIR, 'tok512.bin'), join(alone, 'tok512.bin'));
    const beside = await loadLlm(bin, { cacheDir: join(dir, 'cache') });
    assert.deepEqual(beside.tokenizer, configured.tokenizer);
  });

  it('a configured llama2.c checkpoint takes its tokenizer from models[].tokenizer', async function () {
    requireStories(this);
    this.timeout(60_000);
    const alone = join(dir, 'configured');
    mkdirSync(alone, { recursive: true });
    const bin = join(alone, 'stories260K.bin');
    copyFileSync(join(STORIES_DIR, 'stories260K.bin'), bin);
    const kit = await startTestKernel({
      config: { models: [{ name: 'story', path: bin, tokenizer: join(STORIES_DIR, 'tok512.bin') }] },
    });
    try {
      let text = '';
      for await (const e of await kit.kernel.generation.generate({
        model: 'story',
        prompt: 'Once upon a time',
        maxTokens: 12,
        temperature: 0,
      }))
        if (e.type !== 'done') text += e.text;
      const reference = readFileSync(join(STORIES_DIR, 'reference-prompt-64.txt'), 'utf8');
      assert.ok(text.length > 20, text);
      assert.ok(reference.startsWith(`Once upon a time${text}`), text);
    } finally {
      await kit.stop();
    }
  });

  it('reports hashing the file and building its graph as progress, and neither when the graph is cached', async function () {
    requireStories(this);
    const seen: string[] = [];
    const progress = () => {
      let label = '';
      let done = 0;
      let total = 0;
      return {
        start: (t: number, l: string) => {
          total = t;
          label = l;
        },
        advance: (n: number) => {
          done += n;
        },
        done: () => seen.push(`${label}: ${done}/${total}`),
      };
    };
    const cacheDir = join(dir, 'progress-cache');
    const gguf = join(STORIES_DIR, 'stories260K.gguf');
    const context = { name: 'stories', cacheDir, options: {}, logger: createLogger({ level: 'silent' }), progress };
    await testFormats.loadLlm(gguf, context);
    const size = statSync(gguf).size;
    const header = readGguf(gguf);
    const data = size - header.dataOffset;
    assert.deepEqual(seen, [
      `hashing stories260K.gguf: ${size}/${size}`,
      `reading ${header.tensors.length} tensors of stories260K.gguf: ${data}/${data}`,
      'building the generic graph of stories260K.gguf: 1/1',
    ]);
    seen.length = 0;
    await testFormats.loadLlm(gguf, context);
    assert.deepEqual(seen, []);
  });

  it('builds a GGUF graph in a child process: the event loop keeps turning while it reads and builds', async function () {
    requireOracle(this);
    const cacheDir = join(dir, 'worker-build-cache');
    let turns = 0;
    const timer = setInterval(() => turns++, 20);
    let building = 0;
    const progress = () => ({
      start: (_total: number, label: string) => {
        if (label.startsWith('building')) building = turns;
      },
      advance() {},
      done() {},
    });
    const context = { name: 'l3', cacheDir, options: {}, logger: createLogger({ level: 'silent' }), progress };
    try {
      const loaded = await testFormats.loadLlm(join(ORACLE_DIR, 'llama3-tiny-F16.gguf'), context);
      assert.equal(loaded.config.vocabSize, 128256);
    } finally {
      clearInterval(timer);
    }
    // Reading 45 MB and building a 128k-vocabulary graph takes seconds; on the main thread no timer would fire.
    assert.ok(turns - building >= 3, `the event loop turned ${turns - building} times while the graph was built`);
  });

  it('when two formats claim a source, the more confident loads it and the choice is logged', async function () {
    requireStories(this);
    const lines: string[] = [];
    const logger = {
      info: (o: object, msg: string) => lines.push(`${msg} ${JSON.stringify(o)}`),
      debug() {},
      warn() {},
      error() {},
      child: () => logger,
    } as unknown as Logger;
    const eager: ModelFormat = {
      name: 'eager',
      accepts: 'anything',
      detect: () => ({ confidence: 0.5, reason: 'claims everything', kind: 'llm' }),
    };
    const formats = new ModelFormats([eager, ggufFormat, onnxFormat, llama2cFormat], logger);
    const chosen = await formats.resolve(join(STORIES_DIR, 'stories260K.gguf'));
    assert.equal(chosen.format?.name, 'gguf');
    assert.equal(lines.length, 1);
    assert.match(lines[0]!, /several formats claim .*the most confident, gguf, loads it/);
    assert.match(lines[0]!, /eager \(0\.5: claims everything\)/);
  });
});
