// Writes the llama.cpp references of the RoPE fixtures: `node test/dist/llm-formats/make-rope-refs.js [phi-3 vocab GGUF]`
// writes each fixture, runs it in llama.cpp through node-llama-cpp (its prebuilt CPU binary, float32 weights, one
// thread so that the sums run in one order), and stores per prompt the greedy ids and each step's five best tokens
// with their log-probabilities into test/fixtures/llm-rope/llama-cpp-refs.json. The tests compare against that file.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { ORACLE_DIR } from './llm-module.js';
import { ROPE_REFS_PATH, ropeCases, type RopeRefs } from './rope-refs.js';
import { writeRopeFixture } from './rope-fixtures.js';
import type { RefStep } from './oracle-refs.js';

const GENERATED = 64;

async function main(): Promise<void> {
  const vocabulary = process.argv[2] ?? join(ORACLE_DIR, 'tokenizer-tests', 'ggml-vocab-phi-3.gguf');
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const llama = await getLlama({
    gpu: false,
    build: 'never',
    skipDownload: true,
    usePrebuiltBinaries: true,
    progressLogs: false,
    logLevel: LlamaLogLevel.error,
    maxThreads: 1,
  });
  const dir = tempDir('rope-refs');
  const refs: RopeRefs = { llama_cpp: 'node-llama-cpp 3.21.1 (prebuilt CPU binary)', cases: [] };
  try {
    for (const c of ropeCases()) {
      const path = join(dir, `${c.fixture}.gguf`);
      writeRopeFixture(c.fixture, path, { phi3Vocabulary: vocabulary });
      const model = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
      const context = await model.createContext({ contextSize: c.contextSize, threads: 1 });
      const sequence = context.getSequence();
      const steps: RefStep[] = [];
      const ids: number[] = [];
      for await (const out of sequence.evaluateWithMetadata(
        c.promptIds as never,
        { probabilities: true },
        { temperature: 0 },
      )) {
        const best = [...out.probabilities.entries()].sort((a, b) => b[1] - a[1]).slice(0, 5);
        const logprobs = best.map(([, p]) => Math.log(p));
        steps.push({
          id: out.token,
          top5: best.map(([t], j) => [t, logprobs[j]!]),
          // Differences of log-probabilities are differences of logits.
          top5_logits: logprobs,
          gap: logprobs[0]! - logprobs[1]!,
        });
        ids.push(out.token);
        if (ids.length >= GENERATED) break;
      }
      refs.cases.push({ name: c.name, prompt_ids: c.promptIds, generated_ids: ids, steps });
      await context.dispose();
      await model.dispose();
      console.log(`${c.name}: ${ids.slice(0, 12).join(' ')} …`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const out = join(REPO_ROOT, ROPE_REFS_PATH);
  mkdirSync(join(out, '..'), { recursive: true });
  writeFileSync(out, `${JSON.stringify(refs)}\n`);
  console.log(`wrote ${out}`);
}

await main();
process.exit(0);
