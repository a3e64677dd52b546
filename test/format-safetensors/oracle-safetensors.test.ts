import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadSafetensors, type LoadQuantization } from '@nucleus/plugin-format-safetensors';
import { createTokenizer, loadGguf, type GgufLlama, type LoadedLlm } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { argmax, DecoderRunner, maxAbsDiff } from '../llm-formats/decoder-runner.js';
import { ORACLE_DIR, requireOracle } from '../llm-formats/llm-module.js';
import { exactRef, llamaCppRef } from '../llm-formats/oracle-refs.js';
import { writeOracleCheckpoint } from './safetensors-fixtures.js';

// The oracle GGUFs written as transformers checkpoints (Wq/Wk un-permuted for llama, the Q8_0 embedding dequantized
// exactly, Qwen2 in two shards): the safetensors format must build a graph that computes what the GGUF path computes
// on the same weights, and a tokenizer.json built from the GGUF vocabulary must cut text as the GGUF tokenizer does.

const GENERATED = 64;
const LOGIT_TOLERANCE = 1e-3;

/** The two real-vocabulary oracle models, and how their checkpoint is written. */
const CASES = [
  { stem: 'llama3-tiny-F16', shards: false },
  { stem: 'qwen2-tiny-F16', shards: true },
] as const;

interface Loaded {
  llm: LoadedLlm;
  runner: DecoderRunner;
}

describe('safetensors checkpoints of the oracle models compute what their GGUFs compute', function () {
  this.timeout(600_000);
  let work: string | undefined;
  const opened: DecoderRunner[] = [];
  const ggufs = new Map<string, GgufLlama>();

  before(function () {
    requireOracle(this);
    work = tempDir('safetensors-oracle');
  });
  after(async () => {
    for (const r of opened) await r.close().catch(() => undefined);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const folder = (stem: string): string => join(work!, stem);
  const open = async (llm: LoadedLlm): Promise<Loaded> => {
    const runner = await DecoderRunner.open(llm.onnxPath, llm.config);
    opened.push(runner);
    return { llm, runner };
  };
  const memo = new Map<string, Promise<Loaded>>();
  const once = (key: string, make: () => Promise<Loaded>): Promise<Loaded> => {
    let p = memo.get(key);
    if (!p) memo.set(key, (p = make()));
    return p;
  };
  const gguf = (stem: string): Promise<Loaded> =>
    once(`${stem}/gguf`, async () =>
      open(await loadGguf(join(ORACLE_DIR, `${stem}.gguf`), { cacheDir: join(work!, 'cache'), graphStyle: 'generic' })),
    );
  const checkpoint = (
    stem: string,
    options: { style?: 'generic' | 'contrib'; quantize?: LoadQuantization } = {},
  ): Promise<Loaded> =>
    once(`${stem}/st/${options.style ?? 'generic'}/${options.quantize ?? 'float'}`, async () => {
      const dir = folder(stem);
      if (!existsSync(join(dir, 'config.json'))) {
        const shards = CASES.find((c) => c.stem === stem)!.shards;
        ggufs.set(stem, writeOracleCheckpoint(join(ORACLE_DIR, `${stem}.gguf`), dir, { shards }));
      }
      return open(
        await loadSafetensors(dir, {
          cacheDir: join(work!, 'cache'),
          graphStyle: options.style ?? 'generic',
          ...(options.quantize && { quantize: options.quantize }),
        }),
      );
    });
  /** The GGUF's greedy ids for a reference prompt, run once: the tests that compare with them share them. */
  const greedyMemo = new Map<string, Promise<number[]>>();
  const ggufGreedy = (stem: string, prompt: readonly number[], steps: number): Promise<number[]> => {
    const key = `${stem}/${prompt.join(',')}/${steps}`;
    let p = greedyMemo.get(key);
    if (!p) greedyMemo.set(key, (p = gguf(stem).then(({ runner }) => runner.greedy(prompt, steps))));
    return p;
  };
  /** Starts building a stem's two graphs in child processes while this process runs others; its test awaits them. */
  const buildAhead = (stem: string): void => {
    Promise.all([gguf(stem), checkpoint(stem)]).catch(() => undefined);
  };
  /** Logits of every position of `ids`, one generic run from an empty cache. */
  const forced = async ({ runner }: Loaded, ids: number[]): Promise<Float32Array> =>
    (await runner.stepGeneric([ids], [ids.map(() => 1)], [ids.map((_, i) => i)], runner.emptyCache(1))).logits;

  for (const { stem, shards } of CASES) {
    describe(`${stem}${shards ? ' (two shards and an index)' : ''}`, () => {
      before(function () {
        requireOracle(this);
      });

      it('the folder gives the same 64 greedy tokens as the GGUF, and teacher-forced logits within 1e-3', async () => {
        // The GGUF's graph builds in a child process while this one writes the checkpoint.
        const [gg, st] = await Promise.all([gguf(stem), checkpoint(stem)]);
        assert.equal(st.llm.source, 'safetensors');
        assert.deepEqual(
          { ...st.llm.config, maxContext: 0 },
          { ...gg.llm.config, maxContext: 0 },
          'the same decoder config (but the context, which transformers states apart)',
        );
        for (const p of exactRef(stem).prompts) {
          const steps = p.prompt_ids.length - 1 + GENERATED;
          const ids = (await st.runner.greedy(p.prompt_ids, steps)).slice(p.prompt_ids.length - 1);
          const expected = (await ggufGreedy(stem, p.prompt_ids, steps)).slice(p.prompt_ids.length - 1);
          assert.deepEqual(ids, expected, `${p.name}: greedy ids`);
          // And both are the exact-arithmetic reference's, as the GGUF tests hold the GGUF path to.
          assert.deepEqual(ids, p.generated_ids, `${p.name}: the exact reference's greedy ids`);
          const sequence = [...p.prompt_ids, ...ids.slice(0, -1)];
          const diff = maxAbsDiff(await forced(st, sequence), await forced(gg, sequence));
          console.log(
            `      ${stem} ${p.name}: max |logit − GGUF's| ${diff.toExponential(2)} over ${sequence.length} positions`,
          );
          assert.ok(diff < LOGIT_TOLERANCE, `${p.name}: max |Δ logit| ${diff}`);
        }
      });

      it("tokenizer.json and tokenizer_config.json tokenize as the GGUF's vocabulary does, with its chat template", async () => {
        const st = await checkpoint(stem);
        const model = ggufs.get(stem)!;
        const fromFolder = createTokenizer(st.llm.tokenizer);
        const fromGguf = createTokenizer(model.tokenizer);
        assert.equal(st.llm.chatTemplate, model.chatTemplate);
        assert.deepEqual([fromFolder.bosTokenId, fromFolder.eosTokenIds], [fromGguf.bosTokenId, fromGguf.eosTokenIds]);
        const inputs = readFileSync(join(ORACLE_DIR, 'tokenizer-tests', 'ggml-vocab-llama-bpe.gguf.inp'), 'utf8')
          .split('\n__ggml_vocab_test__\n')
          .slice(0, -1);
        const texts = [
          ...inputs,
          'Hello world, this is a test: 12345 + 6789 = ?',
          "<|im_start|>user\nWhat's the capital of France?<|im_end|>\n<|im_start|>assistant\n",
          'Café naïve — 🙂 日本語のテキスト\n\n\tindented',
        ];
        for (const text of texts) {
          for (const addBos of [false, true]) {
            assert.deepEqual(
              fromFolder.encode(text, { addBos }),
              fromGguf.encode(text, { addBos }),
              `${JSON.stringify(text)} addBos ${addBos}`,
            );
          }
          const ids = fromGguf.encode(text);
          assert.equal(fromFolder.decode(ids), fromGguf.decode(ids), `decode ${JSON.stringify(text)}`);
        }
        for (const p of llamaCppRef(stem).prompts) {
          assert.deepEqual(
            fromFolder.encode(p.prompt!, { addBos: true }),
            p.prompt_ids,
            `${p.name}: the reference's prompt ids`,
          );
        }
      });
    });
  }

  it("llama3-tiny in the contrib graph style (RotaryEmbedding on halves) gives the GGUF's greedy tokens", async function () {
    requireOracle(this);
    const stem = 'llama3-tiny-F16';
    const [, st] = await Promise.all([gguf(stem), checkpoint(stem, { style: 'contrib' })]);
    buildAhead('qwen2-tiny-F16');
    for (const p of exactRef(stem).prompts) {
      const steps = p.prompt_ids.length - 1 + GENERATED;
      assert.deepEqual(
        await st.runner.greedy(p.prompt_ids, steps),
        await ggufGreedy(stem, p.prompt_ids, steps),
        p.name,
      );
    }
  });

  it('quantize int8 and int4 at load: MatMulNBits blocks of 32, logits within a bound of float32 (int4 further off)', async function () {
    requireOracle(this);
    const stem = 'llama3-tiny-F16';
    // The three graphs build in child processes side by side.
    const [float, int8, int4] = await Promise.all([
      checkpoint(stem),
      checkpoint(stem, { quantize: 'int8' }),
      checkpoint(stem, { quantize: 'int4' }),
    ]);
    const quantized = { int8, int4 };
    const p = exactRef(stem).prompts[0]!;
    const sequence = [...p.prompt_ids, ...p.generated_ids.slice(0, 16)];
    const reference = await forced(float, sequence);
    console.log(
      `      float32 logits: max |logit| ${maxAbsDiff(reference, new Float32Array(reference.length)).toFixed(2)}`,
    );
    const errors: Record<LoadQuantization, number> = { int8: 0, int4: 0 };
    const agreement: Record<LoadQuantization, number> = { int8: 0, int4: 0 };
    for (const quantize of ['int8', 'int4'] as const) {
      const q = quantized[quantize];
      assert.equal(q.llm.quantized, quantize);
      assert.ok(
        readFileSync(q.llm.onnxPath).includes('MatMulNBits'),
        `${quantize}: the graph multiplies with MatMulNBits`,
      );
      const logits = await forced(q, sequence);
      errors[quantize] = maxAbsDiff(logits, reference);
      const V = q.llm.config.vocabSize;
      for (let i = 0; i < sequence.length; i++)
        if (argmax(logits, i * V, V) === argmax(reference, i * V, V)) agreement[quantize]++;
      console.log(
        `      ${quantize}: max |logit − float32's| ${errors[quantize].toFixed(4)}, argmax as float32's at ${agreement[quantize]}/${sequence.length} positions`,
      );
    }
    // This random model's attention is sharp (large Wq, Wk), so it is sensitive; bounds from measuring it
    // (int8 0.82, int4 8.6 of logits up to 33).
    assert.ok(errors.int8 > 0 && errors.int8 < 1.5, `int8 max |Δ logit| ${errors.int8}`);
    assert.equal(agreement.int8, sequence.length, 'int8 keeps every argmax');
    assert.ok(errors.int4 > errors.int8 && errors.int4 < 15, `int4 max |Δ logit| ${errors.int4}`);
    assert.ok(agreement.int4 >= (sequence.length * 2) / 3, `int4 keeps ${agreement.int4}/${sequence.length} argmaxes`);
  });
});
