import assert from 'node:assert/strict';
import { readFile, rm, writeFile, cp } from 'node:fs/promises';
import { join } from 'node:path';
import {
  buildLlamaGraph,
  createTokenizer,
  ensureTinyLlama,
  loadLlm,
  loadTinyLlama,
  renderChatTemplate,
  tinyLlamaWeights,
  TINY_LLAMA_ARCH,
  UnsupportedModelError,
  type DecoderConfig,
  type LoadedLlm,
} from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { DecoderRunner, maxAbsDiff, type KvCache } from './decoder-runner.js';
import { referenceLogits } from './reference-llama.js';

const TOL = 1e-4;

describe('tiny-random Llama', () => {
  let cacheDir: string;
  let llm: LoadedLlm;
  let generic: DecoderRunner;
  let contrib: DecoderRunner;
  const V = TINY_LLAMA_ARCH.vocabSize;

  before(async () => {
    cacheDir = tempDir('llm-tiny');
    llm = await loadTinyLlama({ cacheDir });
    generic = await DecoderRunner.open(llm.onnxPath, llm.config);
    const contribLlm = await loadTinyLlama({ cacheDir, graphStyle: 'contrib' });
    contrib = await DecoderRunner.open(contribLlm.onnxPath, contribLlm.config);
  });
  after(async () => {
    await generic?.close();
    await contrib?.close();
    await rm(cacheDir, { recursive: true, force: true });
  });

  describe('export folder', () => {
    it('is a Hugging Face / Optimum folder that loadLlm reads back', async () => {
      const dir = await ensureTinyLlama(cacheDir);
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(config.model_type, 'llama');
      assert.equal(config.num_key_value_heads, 2);
      const loaded = await loadLlm(dir);
      assert.equal(loaded.source, 'onnx');
      const expected: Partial<DecoderConfig> = {
        architecture: 'llama',
        vocabSize: V,
        hiddenSize: 64,
        numLayers: 2,
        numHeads: 4,
        numKvHeads: 2,
        headDim: 16,
        maxContext: 256,
        graphStyle: 'generic',
        kvDtype: 'float32',
      };
      for (const [k, v] of Object.entries(expected)) assert.deepEqual(loaded.config[k as keyof DecoderConfig], v, k);
      assert.equal(loaded.tokenizer.kind, 'hf');
      assert.ok(loaded.chatTemplate?.includes('<|im_start|>'));
      assert.equal(loaded.config.bosTokenId, createTokenizer(loaded.tokenizer).bosTokenId);
    });

    it('is written once: a second ensure reuses the files', async () => {
      const dir = await ensureTinyLlama(cacheDir);
      const before = await readFile(join(dir, 'model.onnx'));
      await ensureTinyLlama(cacheDir);
      assert.deepEqual(await readFile(join(dir, 'model.onnx')), before);
    });

    it('refuses a folder whose config or graph do not fit, listing every problem', async () => {
      const dir = join(cacheDir, 'broken-export');
      await cp(await ensureTinyLlama(cacheDir), dir, { recursive: true });
      const config = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
      await writeFile(
        join(dir, 'config.json'),
        JSON.stringify({ ...config, model_type: 'mistral', num_hidden_layers: 3, num_key_value_heads: 4 }),
      );
      await rm(join(dir, 'tokenizer.json'));
      const err = await loadLlm(dir).then(
        () => assert.fail('loaded'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof UnsupportedModelError, String(err));
      const text = err.problems.join('\n');
      assert.match(text, /model_type "mistral"/);
      assert.match(text, /tokenizer\.json is missing/);
      assert.match(text, /2 past_key_values\.N\.key inputs, config\.json has 3 layers/);
      assert.match(text, /kv heads dim is 2, config\.json says 4/);
      assert.match(text, /past_key_values\.2\.key is missing/);
    });
  });

  it('logits equal a float64 reference forward pass (half-split RoPE, GQA)', async () => {
    const tokens = [296, 40, 257, 99, 101, 32, 117, 112];
    const ref = referenceLogits(tinyLlamaWeights(), TINY_LLAMA_ARCH, tokens, 'half');
    const r = await generic.stepGeneric(
      [tokens],
      [tokens.map(() => 1)],
      [tokens.map((_, i) => i)],
      generic.emptyCache(1),
    );
    tokens.forEach((_, s) => assert.ok(maxAbsDiff(generic.row(r, 0, s), ref[s]!) < TOL, `position ${s}`));
  });

  it('with the KV cache, every step gives the logits of a full recomputation', async () => {
    const tokens = [296, 72, 105, 32, 116, 104, 101, 114, 101, 33, 10, 298];
    const full = await generic.stepGeneric(
      [tokens],
      [tokens.map(() => 1)],
      [tokens.map((_, i) => i)],
      generic.emptyCache(1),
    );
    const prefill = 5;
    let r = await generic.stepGeneric(
      [tokens.slice(0, prefill)],
      [Array(prefill).fill(1)],
      [[0, 1, 2, 3, 4]],
      generic.emptyCache(1),
    );
    for (let s = 0; s < prefill; s++) assert.ok(maxAbsDiff(generic.row(r, 0, s), generic.row(full, 0, s)) < TOL);
    for (let pos = prefill; pos < tokens.length; pos++) {
      r = await generic.stepGeneric([[tokens[pos]!]], [Array(pos + 1).fill(1)], [[pos]], r.cache);
      assert.deepEqual(r.cache.get('0.key')!.dims, [1, 2, pos + 1, 16]);
      assert.ok(maxAbsDiff(generic.row(r, 0, 0), generic.row(full, 0, pos)) < TOL, `step at position ${pos}`);
    }
  });

  it('a left-padded batch of 3 gives each row the logits it gets alone, over prefill and decode steps', async () => {
    const rows = [
      [296, 79, 110, 99, 101],
      [296, 72, 105],
      [296, 84, 104, 101, 32, 101, 110, 100],
    ];
    const width = Math.max(...rows.map((r) => r.length));
    const pad = llm.config.padTokenId ?? 0;
    const ids = rows.map((r) => [...Array<number>(width - r.length).fill(pad), ...r]);
    let mask = rows.map((r) => [...Array<number>(width - r.length).fill(0), ...r.map(() => 1)]);
    // Real tokens count from 0; padding positions are never attended, any value does.
    const positions = rows.map((r) => [...Array<number>(width - r.length).fill(1), ...r.map((_, i) => i)]);
    let batch = await generic.stepGeneric(ids, mask, positions, generic.emptyCache(3));
    const alone: { cache: KvCache; length: number }[] = [];
    for (const [b, r] of rows.entries()) {
      const single = await generic.stepGeneric([r], [r.map(() => 1)], [r.map((_, i) => i)], generic.emptyCache(1));
      assert.ok(
        maxAbsDiff(generic.row(batch, b, width - 1), generic.row(single, 0, r.length - 1)) < TOL,
        `row ${b} prefill`,
      );
      alone.push({ cache: single.cache, length: r.length });
    }
    const next = [97, 98, 99];
    for (let step = 0; step < 3; step++) {
      mask = mask.map((m) => [...m, 1]);
      batch = await generic.stepGeneric(
        next.map((t) => [t + step]),
        mask,
        alone.map((a) => [a.length]),
        batch.cache,
      );
      for (const [b, a] of alone.entries()) {
        const single = await generic.stepGeneric(
          [[next[b]! + step]],
          [Array(a.length + 1).fill(1)],
          [[a.length]],
          a.cache,
        );
        assert.ok(
          maxAbsDiff(generic.row(batch, b, 0), generic.row(single, 0, 0)) < TOL,
          `row ${b} decode step ${step}`,
        );
        alone[b] = { cache: single.cache, length: a.length + 1 };
      }
    }
  });

  describe('contrib graph (GroupQueryAttention, RotaryEmbedding, SkipSimplifiedLayerNormalization)', () => {
    it('agrees with the generic graph within 1e-4 over prefill and 6 decode steps', async () => {
      const prompt = [296, 298, 117, 115, 101, 114, 10, 72, 105];
      let g = await generic.stepGeneric(
        [prompt],
        [prompt.map(() => 1)],
        [prompt.map((_, i) => i)],
        generic.emptyCache(1),
      );
      let c = await contrib.stepContrib([prompt], [prompt.map((_, i) => i)], [prompt.length], contrib.emptyCache(1));
      assert.ok(maxAbsDiff(g.logits, c.logits) < TOL, 'prefill');
      let length = prompt.length;
      for (let step = 0; step < 6; step++) {
        const token = 100 + step;
        g = await generic.stepGeneric([[token]], [Array(length + 1).fill(1)], [[length]], g.cache);
        c = await contrib.stepContrib([[token]], [[length]], [length + 1], c.cache);
        length++;
        assert.ok(maxAbsDiff(g.logits, c.logits) < TOL, `decode step ${step}`);
      }
    });

    it('both RoPE placements (fused into GroupQueryAttention, separate RotaryEmbedding) give the same logits', async () => {
      const weights = tinyLlamaWeights();
      const separate = buildLlamaGraph(weights, TINY_LLAMA_ARCH, {
        ropeLayout: 'half',
        style: 'contrib',
        rotary: 'separate',
      });
      assert.ok(separate.graph.nodes.some((n) => n.opType === 'RotaryEmbedding'));
      const runner = await DecoderRunner.open(separate.encode(), { ...contrib.config });
      try {
        const prompt = [296, 65, 66, 67];
        const a = await runner.stepContrib([prompt], [prompt.map((_, i) => i)], [4], runner.emptyCache(1));
        const b = await contrib.stepContrib([prompt], [prompt.map((_, i) => i)], [4], contrib.emptyCache(1));
        assert.ok(maxAbsDiff(a.logits, b.logits) < TOL);
      } finally {
        await runner.close();
      }
    });

    it('a right-padded batch with per-row lengths gives each row the logits it gets alone', async () => {
      const rows = [
        [296, 79, 110, 99, 101],
        [296, 72, 105],
        [296, 84, 104, 101, 32, 101, 110],
      ];
      const width = Math.max(...rows.map((r) => r.length));
      const ids = rows.map((r) => [...r, ...Array<number>(width - r.length).fill(0)]);
      const positions = rows.map((r) => [...r.map((_, i) => i), ...Array<number>(width - r.length).fill(0)]);
      // A multi-row prompt step spans the longest row; each row's own length is in seqlens_k.
      let lengths = rows.map((r) => r.length);
      let batch = await contrib.stepContrib(ids, positions, lengths, contrib.emptyCache(3));
      for (const [b, r] of rows.entries()) {
        const single = await generic.stepGeneric([r], [r.map(() => 1)], [r.map((_, i) => i)], generic.emptyCache(1));
        assert.ok(
          maxAbsDiff(contrib.row(batch, b, r.length - 1), generic.row(single, 0, r.length - 1)) < TOL,
          `row ${b} prefill`,
        );
      }
      for (let step = 0; step < 3; step++) {
        const tokens = [60 + step, 70 + step, 80 + step];
        batch = await contrib.stepContrib(
          tokens.map((t) => [t]),
          lengths.map((n) => [n]),
          lengths.map((n) => n + 1),
          batch.cache,
        );
        for (const [b, r] of rows.entries()) {
          const seq = [...r, ...Array.from({ length: step + 1 }, (_, s) => [60, 70, 80][b]! + s)];
          const single = await generic.stepGeneric(
            [seq],
            [seq.map(() => 1)],
            [seq.map((_, i) => i)],
            generic.emptyCache(1),
          );
          assert.ok(
            maxAbsDiff(contrib.row(batch, b, 0), generic.row(single, 0, seq.length - 1)) < TOL,
            `row ${b} decode step ${step}`,
          );
        }
        lengths = lengths.map((n) => n + 1);
      }
    });
  });

  it('tokenizer and chat template: a rendered conversation encodes its markers as single tokens, BOS once', () => {
    const tokenizer = createTokenizer(llm.tokenizer);
    const prompt = renderChatTemplate(llm.chatTemplate, [{ role: 'user', content: 'Hi' }], {
      addGenerationPrompt: true,
      bosToken: '<|begin_of_text|>',
      eosToken: '<|im_end|>',
    });
    assert.equal(prompt, '<|begin_of_text|><|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    const ids = tokenizer.encode(prompt, { addBos: true });
    assert.equal(ids.filter((id) => id === tokenizer.bosTokenId).length, 1);
    assert.equal(ids[0], tokenizer.bosTokenId);
    assert.equal(
      ids.filter((id) => tokenizer.eosTokenIds.includes(id)).length,
      1,
      'the <|im_end|> after "Hi" is one EOS token',
    );
    assert.equal(tokenizer.decode(ids), 'user\nHi\nassistant\n');
    assert.equal(tokenizer.decode(ids, { keepSpecial: true }), prompt);
  });
});
