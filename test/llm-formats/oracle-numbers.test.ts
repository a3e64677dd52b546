import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadGguf, type LoadGgufOptions, type LoadedLlm } from '../helpers/llm.js';
import { tempDir } from '../helpers/paths.js';
import { DecoderRunner, maxAbsDiff, type StepResult } from './decoder-runner.js';
import { ORACLE_DIR, requireOracle } from './llm-module.js';
import {
  EXACT_TOLERANCE,
  ORACLE_STEMS,
  compareSteps,
  exactRef,
  firstDifference,
  llamaCppRef,
  llamaCppTolerance,
  stepsBeforeGapBelow,
  tensorTypes,
  type OracleRef,
  type RefPrompt,
  type StepComparison,
} from './oracle-refs.js';

// The oracle README's comparison protocol ("How to compare"), on the graph the GGUF loader builds with its default
// settings (float32 arithmetic on the dequantized weights, generic graph style), and again with int8 activations
// (MatMulNBits accuracy level 4, the opt-in `quantizedMatmul: int8`): held to llama.cpp's tolerances against the exact
// reference, and measured against llama.cpp itself — two different 8-bit roundings of the activations, whose
// differences add (printed per file; asserted only where llama.cpp's choice is clear by twice its tolerance).

const GENERATED = 64;

type Mode = 'float32' | 'int8';
const MODES = ['float32', 'int8'] as const;

/** What the loader is asked for in each mode. */
const MODE_OPTIONS: Record<Mode, Partial<LoadGgufOptions>> = {
  float32: {},
  // int8 activations in the block-quantized matmuls (MatMulNBits accuracy level 4), as llama.cpp computes.
  int8: { quantizedMatmul: 'int8' },
};

/** Whether any matrix of the file is block-quantized, so its matmuls take int8 activations in that mode. */
function hasInt8Matmul(stem: string): boolean {
  if (!existsSync(join(ORACLE_DIR, 'MANIFEST.json'))) return false;
  return [...tensorTypes(stem).values()].some((t) => !['F32', 'F16'].includes(t));
}

interface Model {
  llm: LoadedLlm;
  runner: DecoderRunner;
}

/** One mode's measurements on one file and prompt, printed as a table line. */
interface Deviation {
  vsExact?: number;
  vsLlamaCpp?: number;
  /** How many greedy ids equal the exact reference's. */
  greedyAsExact?: number;
  /** int8 only: the largest logit difference to float32. */
  vsFloat32?: number;
}

describe('oracle GGUFs compute what the exact and llama.cpp references compute (README "How to compare")', function () {
  this.timeout(180_000);
  let cacheDir: string | undefined;
  const models = new Map<string, Promise<Model>>();

  before(function () {
    requireOracle(this);
    cacheDir = tempDir('llm-oracle');
  });
  after(async () => {
    for (const m of models.values()) await m.then((x) => x.runner.close()).catch(() => undefined);
    if (cacheDir) await rm(cacheDir, { recursive: true, force: true });
  });

  /** The graphs in the order the tests below first need them. */
  const order = MODES.flatMap((mode) => ORACLE_STEMS.map((stem) => `${stem}/${mode}`));
  /**
   * The file's graph, built once per mode (a load that fails fails every test that needs it). The next file's graph
   * starts building (in a child process) as this one is first asked for, so it is ready while these tests run.
   */
  const model = (stem: string, mode: Mode, ahead = true): Promise<Model> => {
    const key = `${stem}/${mode}`;
    let m = models.get(key);
    if (!m) {
      m = (async () => {
        const llm = await loadGguf(join(ORACLE_DIR, `${stem}.gguf`), {
          cacheDir: cacheDir!,
          graphStyle: 'generic',
          ...MODE_OPTIONS[mode],
        });
        return { llm, runner: await DecoderRunner.open(llm.onnxPath, llm.config) };
      })();
      models.set(key, m);
    }
    const next = order[order.indexOf(key) + 1];
    if (ahead && next !== undefined && !models.has(next)) {
      const [nextStem, nextMode] = next.split('/') as [string, Mode];
      model(nextStem, nextMode, false).catch(() => undefined);
    }
    return m;
  };

  it('the oracle folder holds exactly the GGUFs these tests cover', function () {
    requireOracle(this);
    const files = readdirSync(ORACLE_DIR)
      .filter((f) => f.endsWith('.gguf'))
      .map((f) => f.slice(0, -'.gguf'.length));
    assert.deepEqual(files.sort(), [...ORACLE_STEMS].sort());
    for (const stem of ORACLE_STEMS) {
      assert.ok(existsSync(join(ORACLE_DIR, 'refs', `${stem}.json`)), `refs/${stem}.json`);
      assert.ok(existsSync(join(ORACLE_DIR, 'refs', `${stem}.exact.json`)), `refs/${stem}.exact.json`);
    }
  });

  for (const mode of MODES) {
    for (const stem of ORACLE_STEMS) {
      describe(`${stem} (${mode === 'float32' ? 'float32, default settings' : 'int8 activations, accuracy level 4'})`, () => {
        const tol = llamaCppTolerance(stem);
        let exact: OracleRef;
        let cpp: OracleRef;
        const deviations = new Map<string, Deviation>();
        const measured = (prompt: string): Deviation => {
          const d = deviations.get(prompt) ?? {};
          deviations.set(prompt, d);
          return d;
        };
        // Greedy ids and teacher-forced runs, computed once per prompt and sequence, shared by the tests below.
        const greedy = new Map<string, Promise<number[]>>();
        const forced = new Map<string, Promise<StepResult>>();

        before(function () {
          requireOracle(this);
          exact = exactRef(stem);
          cpp = llamaCppRef(stem);
        });
        after(() => {
          greedy.clear();
          forced.clear();
          const show = (v: number | undefined, digits: number): string => (v === undefined ? '-' : v.toFixed(digits));
          for (const [prompt, d] of deviations) {
            console.log(
              `      ${mode} ${stem} ${prompt}: max |Δ(logit − top1)| vs exact ${show(d.vsExact, 5)}, ` +
                `vs llama.cpp ${show(d.vsLlamaCpp, 3)} (tolerance ${tol}); greedy ids as exact ${show(d.greedyAsExact, 0)}/${GENERATED}` +
                (d.vsFloat32 === undefined ? '' : `; max |logit − float32's| ${show(d.vsFloat32, 4)}`),
            );
          }
        });

        const greedyIds = (p: RefPrompt): Promise<number[]> => {
          let ids = greedy.get(p.name);
          if (!ids) {
            ids = (async () => {
              const { runner } = await model(stem, mode);
              const next = await runner.greedy(p.prompt_ids, p.prompt_ids.length - 1 + GENERATED);
              return next.slice(p.prompt_ids.length - 1);
            })();
            greedy.set(p.name, ids);
          }
          return ids;
        };

        /** One run over prompt + generated ids: the logits that predicted every generated token. */
        const teacherForced = async (p: RefPrompt): Promise<(k: number) => Float32Array> => {
          const sequence = [...p.prompt_ids, ...p.generated_ids];
          const key = sequence.join(',');
          let result = forced.get(key);
          const { runner } = await model(stem, mode);
          if (!result) {
            const positions = sequence.map((_, i) => i);
            result = runner.stepGeneric([sequence], [sequence.map(() => 1)], [positions], runner.emptyCache(1));
            forced.set(key, result);
          }
          const r = await result;
          return (k) => runner.row(r, 0, p.prompt_ids.length - 1 + k);
        };

        const describeFailure = (c: StepComparison, what: string): string =>
          `${what}: max |Δ| ${c.maxDiff.toFixed(6)} at step ${c.worst.step} token ${c.worst.token} ` +
          `(${c.worst.got.toFixed(6)} vs ${c.worst.want.toFixed(6)}); argmax misses ${JSON.stringify(c.argmaxMisses)}`;

        if (mode === 'int8' && hasInt8Matmul(stem)) {
          it('int8 activations move the logits off the float32 ones (the setting reaches its quantized matmuls)', async () => {
            const e = exact.prompts.find((p) => p.name === 'short')!;
            const sequence = [...e.prompt_ids, ...e.generated_ids];
            const logits = async (m: Mode): Promise<Float32Array> => {
              const { runner } = await model(stem, m);
              const ones = [sequence.map(() => 1)];
              const positions = [sequence.map((_, i) => i)];
              return (await runner.stepGeneric([sequence], ones, positions, runner.emptyCache(1))).logits;
            };
            const d = maxAbsDiff(await logits('float32'), await logits('int8'));
            measured('short').vsFloat32 = d;
            assert.ok(d > 1e-3, `the int8 logits are within ${d} of the float32 ones`);
          });
        }

        for (const promptName of ['short', 'paragraph']) {
          const exactPrompt = (): RefPrompt => exact.prompts.find((p) => p.name === promptName)!;
          const cppPrompt = (): RefPrompt => cpp.prompts.find((p) => p.name === promptName)!;

          if (mode === 'float32') {
            it(`${promptName}: ${GENERATED} greedy ids equal the exact reference's`, async () => {
              const e = exactPrompt();
              assert.deepEqual(e.prompt_ids, cppPrompt().prompt_ids);
              const ids = await greedyIds(e);
              const same = firstDifference(ids, e.generated_ids);
              measured(promptName).greedyAsExact = same < 0 ? GENERATED : same;
              assert.deepEqual(ids, e.generated_ids);
            });

            it(`${promptName}: teacher-forced logit differences and log-probabilities within ${EXACT_TOLERANCE} of the exact reference`, async () => {
              const e = exactPrompt();
              const c = compareSteps(e.steps, await teacherForced(e), 0);
              measured(promptName).vsExact = c.maxDiff;
              assert.ok(c.maxDiff <= EXACT_TOLERANCE, describeFailure(c, 'logit differences'));
              assert.ok(c.maxLogprobDiff <= EXACT_TOLERANCE, `max |Δ logprob| ${c.maxLogprobDiff}`);
              // Every step's argmax is the reference's (its smallest gap, 0.0023, is above the tolerance).
              assert.deepEqual(c.argmaxMisses, []);
            });
          } else {
            it(`${promptName}: against the exact reference within ${tol} (llama.cpp's tolerance), greedy ids up to its first gap below that`, async () => {
              const e = exactPrompt();
              const c = compareSteps(e.steps, await teacherForced(e), tol);
              const ids = await greedyIds(e);
              const comparable = stepsBeforeGapBelow(e.steps, tol);
              const same = firstDifference(ids, e.generated_ids);
              Object.assign(measured(promptName), { vsExact: c.maxDiff, greedyAsExact: same < 0 ? GENERATED : same });
              assert.ok(c.maxDiff <= tol, describeFailure(c, 'logit differences'));
              assert.deepEqual(c.argmaxMisses, []);
              assert.deepEqual(ids.slice(0, comparable), e.generated_ids.slice(0, comparable));
            });
          }

          if (mode === 'float32') {
            it(`${promptName}: llama.cpp's teacher-forced logits within ${tol}, its argmax where the gap exceeds that, its greedy ids ${
              stem.startsWith('quant-zoo-') && stem !== 'quant-zoo-F32'
                ? 'up to its first gap below 1.5'
                : `for all ${GENERATED} steps`
            }`, async () => {
              const r = cppPrompt();
              const c = compareSteps(r.steps, await teacherForced(r), tol);
              const ids = await greedyIds(r);
              measured(promptName).vsLlamaCpp = c.maxDiff;
              assert.ok(c.maxDiff <= tol, describeFailure(c, 'logit differences'));
              assert.deepEqual(c.argmaxMisses, []);
              const comparable = tol === 1.5 ? stepsBeforeGapBelow(r.steps, 1.5) : GENERATED;
              assert.deepEqual(ids.slice(0, comparable), r.generated_ids.slice(0, comparable));
            });
          } else {
            it(`${promptName}: against llama.cpp, measured; its argmax wherever its gap exceeds ${2 * tol}`, async () => {
              const r = cppPrompt();
              const c = compareSteps(r.steps, await teacherForced(r), 2 * tol);
              measured(promptName).vsLlamaCpp = c.maxDiff;
              assert.deepEqual(c.argmaxMisses, []);
            });
          }
        }
      });
    }
  }
});
