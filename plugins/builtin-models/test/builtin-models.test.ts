import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type BuiltinModelManifest,
  builtinFormat,
  builtinModels,
  STORIES_GGUF,
  STORIES_MODEL,
  STORY_CHAT_TEMPLATE,
  TINY_LLAMA_MARKER,
} from '@nucleus/plugin-builtin-models';
import { noProgress } from '@nucleus/sdk';
import * as ort from 'onnxruntime-node';
import { recordingLogger } from '@nucleus/sdk/testing';

/** The stories260K file as shipped, by the hash the plugin's README gives. */
const STORIES_SHA256 = '47e6f459b2798df359505189672e11200f47997954743c59e30c921276c18998';

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

/** Opens a graph in onnxruntime-node and lists its input and output names. */
async function openGraph(path: string): Promise<{ inputs: readonly string[]; outputs: readonly string[] }> {
  const session = await ort.InferenceSession.create(path);
  try {
    return { inputs: session.inputNames, outputs: session.outputNames };
  } finally {
    await session.release();
  }
}

describe('builtin-models: the built-in list', () => {
  let cacheDir: string;
  before(() => {
    cacheDir = mkdtempSync(join(tmpdir(), 'nucleus-builtin-'));
  });
  after(() => rmSync(cacheDir, { recursive: true, force: true }));

  it('names every built-in with its kind, and gives the LLMs and the encoder their context and width', () => {
    assert.deepEqual(
      builtinModels.map((m) => `${m.kind}:${m.name}`),
      [
        'llm:stories260K',
        'llm:tiny-llama',
        'embedding:bert-tiny',
        'tensor:mlp-classifier',
        'tensor:multi-io',
        'tensor:resnet-tiny',
        'tensor:tabular-classifier',
        'tensor:bert-tiny',
      ],
    );
    for (const m of builtinModels) assert.ok(m.description.length > 0, m.name);
    for (const m of builtinModels.filter((b) => b.kind !== 'tensor')) {
      assert.ok(Number.isInteger(m.maxContext) && m.maxContext! > 0, `${m.name} maxContext`);
      assert.ok(Number.isInteger(m.dimensions) && m.dimensions! > 0, `${m.name} dimensions`);
    }
    const encoder = builtinModels.find((m) => m.kind === 'embedding')!.encoder!;
    assert.equal(encoder.pooling, 'mean');
    assert.equal(encoder.hiddenSize, 32);
  });

  it('stories260K is the shipped GGUF file, unchanged, with a template that hands the user’s words on as a story', async () => {
    const stories = builtinModels.find((m) => m.name === STORIES_MODEL)!;
    assert.equal(await stories.prepare(cacheDir), STORIES_GGUF);
    const bytes = readFileSync(STORIES_GGUF);
    assert.equal(bytes.subarray(0, 4).toString('latin1'), 'GGUF');
    assert.equal(sha256(bytes), STORIES_SHA256);
    assert.equal(stories.chatTemplate, STORY_CHAT_TEMPLATE);
    assert.match(STORY_CHAT_TEMPLATE, /^\{\{ bos_token \}\}/);
  });

  it('each tensor model is prepared as a version folder whose model.onnx opens and matches its model.json', async () => {
    for (const m of builtinModels.filter((b) => b.kind === 'tensor')) {
      const dir = await m.prepare(cacheDir);
      assert.equal(dir, join(cacheDir, m.name, '1'));
      const manifest = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as BuiltinModelManifest;
      assert.equal(manifest.name, m.name);
      assert.equal(manifest.framework, 'onnx');
      assert.equal(sha256(readFileSync(join(dir, 'model.onnx'))), manifest.sha256, m.name);
      const graph = await openGraph(join(dir, 'model.onnx'));
      assert.deepEqual(
        graph.inputs,
        manifest.inputs.map((t) => t.name),
        `${m.name} inputs`,
      );
      assert.deepEqual(
        graph.outputs,
        manifest.outputs.map((t) => t.name),
        `${m.name} outputs`,
      );
    }
  });

  it('prepare writes once: a second call finds the files and leaves them as they are', async () => {
    const mlp = builtinModels.find((m) => m.name === 'mlp-classifier')!;
    const dir = await mlp.prepare(cacheDir);
    const written = statSync(join(dir, 'model.onnx')).mtimeMs;
    assert.equal(await mlp.prepare(cacheDir), dir);
    assert.equal(statSync(join(dir, 'model.onnx')).mtimeMs, written);
  });

  it('the embedding model is prepared as the encoder graph itself, which opens', async () => {
    const bert = builtinModels.find((m) => m.kind === 'embedding')!;
    const path = await bert.prepare(cacheDir);
    assert.match(path, /model\.onnx$/);
    const graph = await openGraph(path);
    assert.ok(graph.inputs.length > 0 && graph.outputs.length > 0);
  });

  it('the tiny Llama is a marked folder the builtin format claims and loads into a graph that opens', async () => {
    const tiny = builtinModels.find((m) => m.name === 'tiny-llama')!;
    const dir = await tiny.prepare(cacheDir);
    const marker = JSON.parse(readFileSync(join(dir, TINY_LLAMA_MARKER), 'utf8')) as { sha256: string };
    assert.equal(marker.sha256, sha256(readFileSync(join(dir, 'model.onnx'))));
    const source = { source: dir, path: dir, type: 'directory' as const };
    assert.deepEqual(await builtinFormat.detect(source), {
      confidence: 1,
      reason: 'the built-in tiny Llama (its marker file is there)',
      kind: 'llm',
      buildsGraph: true,
    });
    // Another folder, or the same files without the marker, are not the built-in's.
    assert.equal(await builtinFormat.detect({ source: cacheDir, path: cacheDir, type: 'directory' }), undefined);
    assert.equal(await builtinFormat.detect({ ...source, type: 'file' }), undefined);
    const llm = await builtinFormat.loadLlm!(source, {
      name: 'tiny-llama',
      cacheDir,
      graphStyle: 'generic',
      maxContext: 64,
      options: {},
      logger: recordingLogger(),
      progress: () => noProgress,
    });
    assert.equal(llm.name, 'tiny-llama');
    assert.equal(llm.onnxPath, join(dir, 'model.onnx'));
    assert.equal(llm.tokenizer.kind, 'hf');
    const graph = await openGraph(llm.onnxPath);
    assert.ok(graph.inputs.includes('input_ids'), `inputs: ${graph.inputs}`);
    assert.ok(graph.outputs.includes('logits'), `outputs: ${graph.outputs}`);
  });
});
