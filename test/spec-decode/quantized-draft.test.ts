import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NucleusEvents } from '@nucleus/sdk';
import { loadModel } from '@nucleus/sdk/onnx';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { generateAll } from '../llm-engine/engine-helpers.js';
import { parseIds, requireStories, STORIES_DIR } from '../llm-formats/llm-module.js';

const QUANT = join(REPO_ROOT, 'plugins', 'quant-int8');
const SPEC = join(REPO_ROOT, 'plugins', 'spec-decode');
const STORIES = join(STORIES_DIR, 'stories260K.gguf');

// models[].speculation.draftQuantize end to end: the draft is the model itself, its graph rewritten by the quant-int8
// plugin's int8 transform at load, opened in the worker and run by the spec-decode plugin's proposer. Greedy output must
// be llama2.c's published reference, and the int8 self-draft must agree with the model on most tokens.
describe('self-speculation from models[].speculation.draftQuantize (stories260K, int8 draft)', () => {
  let cacheDir: string | undefined;
  let kit: TestKernel | undefined;
  const acceptance: NucleusEvents['spec.acceptance'][] = [];
  before(async function () {
    requireStories(this);
    cacheDir = tempDir('spec-quantized-draft');
    kit = await startTestKernel({
      plugins: [QUANT, SPEC],
      config: {
        'cache.dir': cacheDir,
        // stories260K's steps cost about what its draft's do: auto-off would pause the drafts this test checks.
        'plugin.spec-decode.autoOffMinAcceptance': 0,
        models: [
          {
            name: 'stories',
            path: STORIES,
            graphStyle: 'contrib',
            speculation: { draftQuantize: 'int8', numSpeculativeTokens: 4 },
          },
          // The object form with the transform's own settings: dynamic int8 with the head left float32.
          {
            name: 'stories-dynamic',
            path: STORIES,
            graphStyle: 'contrib',
            speculation: { draftQuantize: { method: 'dynamic', exclude: ['MatMul_20'] }, numSpeculativeTokens: 4 },
          },
          { name: 'stories-bad', path: STORIES, speculation: { draftQuantize: 'int3' }, optional: true },
        ],
      },
    });
    kit.kernel.events.on('spec.acceptance', (e) => acceptance.push(e));
  });
  // The `nucleus.transform` line of each graph the transforms wrote to the cache.
  async function transformedGraphs(): Promise<string[]> {
    const root = join(cacheDir!, 'transformed');
    const graphs = await Promise.all(readdirSync(root).map((key) => loadModel(join(root, key, 'model.onnx'))));
    return graphs.map((g) => g.metadataProps['nucleus.transform'] ?? '');
  }
  // llama2.c's 200 greedy tokens for its prompt, token for token.
  async function givesGreedyReference(model: string): Promise<void> {
    const expected = parseIds(readFileSync(join(STORIES_DIR, 'reference-greedy-200.ids.txt'), 'utf8'));
    const out = await generateAll(kit!.kernel.generation, {
      model,
      prompt: expected.prompt,
      maxTokens: expected.next.length,
      temperature: 0,
      ignoreEos: true,
    });
    assert.deepEqual(out.tokens[0], expected.next);
  }
  after(async () => {
    await kit?.stop();
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  it('gives the greedy reference token for token, with most of the int8 draft’s tokens accepted', async () => {
    await givesGreedyReference('stories');
    // The draft's graph is the transform's output: MatMul weights as 8-bit blocks.
    const transforms = await transformedGraphs();
    assert.equal(transforms.filter((t) => t.startsWith('int8 ')).length, 1);
    assert.ok(
      transforms.some((t) => /^int8 .*→ MatMulNBits.*8-bit/.test(t)),
      transforms.join('\n'),
    );
    // Telemetry arrives in groups after the tokens: wait (bounded) for the drafts to be reported.
    for (let i = 0; i < 100 && acceptance.reduce((n, e) => n + e.proposedTokens, 0) === 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    const proposed = acceptance.reduce((n, e) => n + e.proposedTokens, 0);
    const accepted = acceptance.reduce((n, e) => n + e.acceptedTokens, 0);
    assert.ok(acceptance.every((e) => e.method === 'draft'));
    assert.ok(proposed > 0, 'the int8 draft drafted');
    // int8 weights agree with float32 on about 99 % of stories260K's greedy tokens (quant bench): most drafts hold.
    assert.ok(accepted / proposed >= 0.8, `acceptance ${accepted} of ${proposed}`);
  });

  it('takes draftQuantize with the transform’s settings (dynamic int8, head float32): greedy reference kept', async () => {
    await givesGreedyReference('stories-dynamic');
    // The per-model settings reached the transform: every MatMul but the excluded head runs in int8.
    const transforms = await transformedGraphs();
    const dynamic = transforms.find((t) => t.startsWith('dynamic '));
    assert.match(dynamic ?? '', /^dynamic .*: 20 nodes int8/, transforms.join('\n'));
    for (let i = 0; i < 100 && !acceptance.some((e) => e.model === 'stories-dynamic' && e.proposedTokens > 0); i++)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(
      acceptance.some((e) => e.model === 'stories-dynamic' && e.proposedTokens > 0),
      'the dynamic draft drafted',
    );
  });

  it('fails a model whose draftQuantize names a transform no plugin offers, with those offered', () => {
    const info = kit!.kernel.generation.list().find((m) => m.name === 'stories-bad');
    assert.equal(info?.state, 'failed');
    assert.match(
      info?.reason ?? '',
      /quantize "int3", but no active plugin provides a model transform.*available: .*int8/,
    );
  });
});
