// The gguf suite: every quant type of the oracle's Llama-3-style model (and the real-vocabulary masters), loaded by
// Nucleus and by node-llama-cpp from the same file: resident memory against the file size, and decode tokens/s.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { loadavg } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ggmlTypeName, readGguf } from '@nucleus/plugin-format-gguf';
import { runProbe, type ProbeKind, type ProbeResult, type ProbeRuntime, type ProbeSpec } from './gguf-probe.js';
import { loadLlm } from './llm-models.js';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';
import { ensureSyntheticGguf } from './synthetic-gguf.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
/** Comma-separated parts of file names: only the files that contain one (for a quick run). */
const ONLY = process.env.BENCH_GGUF_FILES?.split(',').filter(Boolean);
const NEW_TOKENS = 64;
const THREADS = 2;
const STREAMS = [1, 16];
const REPO = fileURLToPath(new URL('../../', import.meta.url));
const SHARED = join(REPO, '..', 'shared', 'models');
const ORACLE = join(SHARED, 'llm-oracle');
const STORIES = join(SHARED, 'stories260K');
/** `<s>Once upon a time` in the 512-token vocabulary of stories260K, which the quant-zoo files share. */
const STORIES_PROMPT = [1, 403, 407, 261, 378];

/** One GGUF file and what llama.cpp generated from it when the oracle was made. */
interface Subject {
  path: string;
  name: string;
  bytes: number;
  /** Tensor types of its matrices, with counts ("Q4_K ×13, Q6_K ×3"). */
  types: string;
  promptIds: number[];
  /** llama.cpp's greedy ids for `promptIds` (refs/<stem>.json), where the oracle has them. */
  reference?: number[];
}

type Outcome = ProbeResult | { failed: string };

type Speed = ProbeRuntime | 'nucleus, int8 matmuls' | 'node-llama-cpp, 1 thread';

interface Row {
  subject: Subject;
  /** Decode runs (and the greedy ids): each runtime at THREADS threads, Nucleus also with int8 matmuls, node-llama-cpp at 1. */
  speed: Record<Speed, Outcome>;
  /** Memory of each runtime, and of ONNX Runtime alone on Nucleus's graph. */
  memory: Record<ProbeKind, Outcome>;
}

function describe(path: string): Subject {
  const file = readGguf(path);
  const counts = new Map<string, number>();
  for (const t of file.tensors)
    if (t.dims.filter((d) => d > 1).length >= 2)
      counts.set(ggmlTypeName(t.type), (counts.get(ggmlTypeName(t.type)) ?? 0) + 1);
  const stem = basename(path).replace(/\.gguf$/, '');
  const refsPath = join(ORACLE, 'refs', `${stem}.json`);
  const refs = existsSync(refsPath)
    ? (JSON.parse(readFileSync(refsPath, 'utf8')) as { prompts: { prompt_ids: number[]; generated_ids: number[] }[] })
        .prompts[0]
    : undefined;
  return {
    path,
    name: basename(path),
    bytes: statSync(path).size,
    types: [...counts].map(([type, n]) => `${type} ×${n}`).join(', '),
    promptIds: refs?.prompt_ids ?? STORIES_PROMPT,
    ...(refs && { reference: refs.generated_ids }),
  };
}

/** The oracle's zoo (F32 master first, then by size), its two real-vocabulary masters, then stories260K. */
function subjects(): Subject[] {
  const paths: string[] = [];
  if (existsSync(ORACLE)) {
    const zoo = readdirSync(ORACLE)
      .filter((f) => /^quant-zoo-.*\.gguf$/.test(f) && f !== 'quant-zoo-F32.gguf')
      .map((f) => join(ORACLE, f))
      .sort((a, b) => statSync(b).size - statSync(a).size);
    paths.push(join(ORACLE, 'quant-zoo-F32.gguf'), ...zoo);
    paths.push(join(ORACLE, 'llama3-tiny-F16.gguf'), join(ORACLE, 'qwen2-tiny-F16.gguf'));
  }
  paths.push(join(STORIES, 'stories260K.gguf'), join(STORIES, 'stories260K-q8_0.gguf'));
  // A 460 MB file, where weights rather than fixed costs decide memory: written on first use, asked for by name.
  if (ONLY?.some((part) => 'synthetic'.includes(part)) && existsSync(ORACLE)) {
    mkdirSync(join(REPO, '.cache', 'bench'), { recursive: true });
    paths.push(
      ensureSyntheticGguf(join(REPO, '.cache', 'bench', 'synthetic-q4_k_m.gguf'), join(ORACLE, 'quant-zoo-F32.gguf')),
    );
  }
  return paths.filter((p) => existsSync(p) && (!ONLY || ONLY.some((part) => basename(p).includes(part)))).map(describe);
}

/** A message fit for the results: no machine paths, one line. */
function clean(message: string): string {
  return message
    .replace(/\/\S*\/([^/\s]+\.gguf)/g, '$1')
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\|/g, '\\|')
    .trim();
}

async function probe(spec: ProbeSpec): Promise<Outcome> {
  try {
    return await runProbe(spec);
  } catch (err) {
    return { failed: err instanceof Error ? err.message : String(err) };
  }
}

async function measure(subject: Subject): Promise<Row> {
  const spec = (runtime: ProbeKind, streams: number[]): ProbeSpec => ({
    runtime,
    path: subject.path,
    promptIds: subject.promptIds,
    newTokens: NEW_TOKENS,
    streams,
    seconds: SECONDS,
    threads: THREADS,
  });
  // Nucleus builds its graph from the GGUF into the model cache on a first load: the decode runs come first and fill
  // it, so that the memory reading is that of every later start.
  const nucleus = await probe(spec('nucleus', STREAMS));
  let memory: Pick<Row['memory'], 'nucleus' | 'onnxruntime'> = { nucleus, onnxruntime: nucleus };
  if (!problem(nucleus)) {
    // The graph the server ran (contrib on the CPU backend), from the cache the server filled.
    const llm = await loadLlm(subject.path, { graphStyle: 'contrib' });
    memory = {
      nucleus: await probe(spec('nucleus', [])),
      onnxruntime: await probe({ ...spec('onnxruntime', []), path: llm.onnxPath, config: llm.config }),
    };
  }
  const int8 = problem(nucleus) ? nucleus : await probe({ ...spec('nucleus', STREAMS), quantizedMatmul: 'int8' });
  const peer = await probe(spec('node-llama-cpp', STREAMS));
  // llama.cpp's threads wait for each other by spinning; on a 2-core machine 2 threads can be many times slower than 1.
  const peerAlone = await probe({ ...spec('node-llama-cpp', STREAMS), threads: 1 });
  return {
    subject,
    speed: { nucleus, 'nucleus, int8 matmuls': int8, 'node-llama-cpp': peer, 'node-llama-cpp, 1 thread': peerAlone },
    memory: { ...memory, 'node-llama-cpp': problem(peer) ? peer : await probe(spec('node-llama-cpp', [])) },
  };
}

const MB = 1e6;
const fmt = (n: number | undefined, digits = 0): string =>
  n === undefined || !Number.isFinite(n) ? '–' : n.toFixed(digits);

function problem(o: Outcome): string | undefined {
  if ('failed' in o) return `failed: ${clean(o.failed)}`;
  return o.refused ? `refused: ${clean(o.refused)}` : undefined;
}

function memory(o: Outcome, bytes: number): string {
  if (problem(o)) return '–';
  const rss = (o as ProbeResult).rss - (o as ProbeResult).rssBefore;
  return `${fmt(rss / MB, 1)} (${fmt(rss / bytes, 2)}×)`;
}

const rate = (o: Outcome, streams: number): number | undefined =>
  problem(o) ? undefined : (o as ProbeResult).tokensPerSecond[streams];

/** Tokens/s at 1 and 16 streams, as "a / b". */
const rates = (o: Outcome): string => STREAMS.map((n) => fmt(rate(o, n))).join(' / ');

/** Ours over the faster of theirs at 1 and 16 streams, as "a / b". */
const ratios = (ours: Outcome, theirs: Outcome[]): string =>
  STREAMS.map((n) => fmt((rate(ours, n) ?? NaN) / Math.max(...theirs.map((t) => rate(t, n) ?? NaN)), 2)).join(' / ');

/** Leading ids of `ids` equal to `reference`, as "k/n". */
function agreement(ids: number[] | undefined, reference: number[] | undefined): string {
  if (!ids || !reference) return '–';
  let k = 0;
  while (k < reference.length && ids[k] === reference[k]) k++;
  return `${k}/${reference.length}`;
}

/** Resident memory against the file size. */
function memoryLines(rows: Row[]): string[] {
  const lines = [
    '| file | matrices | file MB | Nucleus RSS MB (× file) | of which the ORT session | node-llama-cpp RSS MB (× file) |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
  ];
  for (const { subject: s, memory: held } of rows) {
    const ours = problem(held.nucleus);
    lines.push(
      `| ${[
        s.name,
        s.types,
        fmt(s.bytes / MB, 2),
        ours ?? memory(held.nucleus, s.bytes),
        ours ? '–' : memory(held.onnxruntime, s.bytes),
        problem(held['node-llama-cpp']) ?? memory(held['node-llama-cpp'], s.bytes),
      ].join(' | ')} |`,
    );
  }
  return lines;
}

/** Decode tokens/s at 1 / 16 streams, ratios to node-llama-cpp's faster thread count, and greedy agreement. */
function speedLines(rows: Row[]): string[] {
  const lines = [
    `| file | Nucleus | Nucleus, int8 matmuls | node-llama-cpp, ${THREADS} threads | node-llama-cpp, 1 thread | ratio | ratio, int8 matmuls | greedy = llama.cpp (Nucleus / int8 / node-llama-cpp) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const { subject: s, speed } of rows) {
    const peers = [speed['node-llama-cpp'], speed['node-llama-cpp, 1 thread']];
    const int8 = speed['nucleus, int8 matmuls'];
    // Without a llama.cpp reference (stories260K), Nucleus is compared with node-llama-cpp.
    const ids = (o: Outcome) => (problem(o) ? undefined : (o as ProbeResult).greedy);
    const reference = s.reference ?? ids(speed['node-llama-cpp']);
    const greedy = [speed.nucleus, int8, ...(s.reference ? [speed['node-llama-cpp']] : [])]
      .map((o) => agreement(ids(o), reference))
      .join(' / ');
    const cells = [s.name];
    const ours = problem(speed.nucleus);
    if (ours) cells.push(ours, '–');
    else cells.push(rates(speed.nucleus), problem(int8) ?? rates(int8));
    cells.push(...peers.map((p) => problem(p) ?? rates(p)), ratios(speed.nucleus, peers), ratios(int8, peers));
    cells.push(s.reference ? greedy : `${greedy} (against node-llama-cpp)`);
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines;
}

function commitMeasured(): string {
  try {
    const head = execFileSync('git', ['log', '-1', '--format=%h %s'], { cwd: REPO, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: REPO,
      encoding: 'utf8',
    });
    return dirty.trim() ? `${head} (with uncommitted changes)` : head;
  } catch {
    return 'unknown';
  }
}

/** Resident memory and decode speed per GGUF quant type, Nucleus against node-llama-cpp on the same files. */
export async function ggufSuite(): Promise<string> {
  const machine = machineInfo();
  const loadBefore = loadavg()[0]!;
  const list = subjects();
  if (!list.length) return 'gguf: no GGUF files found (../shared/models is absent); nothing measured.';
  const rows: Row[] = [];
  for (const subject of list) {
    process.stderr.write(`gguf: ${subject.name}\n`);
    rows.push(await measure(subject));
  }
  const peerVersion = await (await import('node-llama-cpp')).getModuleVersion();
  const markdown = [
    '# gguf-quants benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}, node-llama-cpp ${peerVersion} (its prebuilt CPU binary). Load average ${loadBefore.toFixed(2)} at the start, ${loadavg()[0]!.toFixed(2)} at the end.`,
    '',
    `Measured: ${commitMeasured()}.`,
    '',
    '## Memory',
    '',
    ...memoryLines(rows),
    '',
    `## Decode, tokens/s at ${STREAMS.join(' / ')} streams`,
    '',
    ...speedLines(rows),
    '',
    '## How',
    '',
    `- Each file is loaded by each runtime in a process of its own, ${THREADS} threads each (Nucleus: \`plugin.backend-cpu.intraOpNumThreads\` ${THREADS}, one inference worker; node-llama-cpp: \`maxThreads\` and context \`threads\` ${THREADS}, \`gpu: false\`). Both run in process, no HTTP: Nucleus through its generation engine (\`kernel.generation\`, scheduler.batchWindowMs 2), node-llama-cpp through \`LlamaContextSequence.evaluate\`.`,
    `- RSS: growth of the process's resident set from the runtime started with nothing loaded to after loading the file and one greedy generation of ${NEW_TOKENS} tokens (so that everything a generation needs is resident, mmapped weights included), each read after a full GC, in the same process (separate idle processes differ by several MB from run to run), in a process of its own run with a 1 MB V8 young generation (whose resizing otherwise moves RSS by up to 10 MB). Nucleus: a server started with no model, the file then loaded through \`POST /admin/models\`; the growth counts the model's inference worker thread and its ONNX Runtime session, with the graph already in the model cache (a first load builds it from the GGUF first). node-llama-cpp: \`getLlama\` with its backend loaded, then \`loadModel\` and a context of one sequence. Of which the ORT session: the same growth in a process that opens only the ONNX Runtime session of the graph Nucleus built (contrib, on the CPU) and runs it as the engine does (one row, the prompt, ${NEW_TOKENS} decode steps), from a baseline that holds a one-node session: the weights, the KV cache and ORT's buffers, the rest of Nucleus's being the engine, its worker thread and their heaps. The issue's target: at most 1.5× the file size for quantized files.`,
    `- Decode: tokens/s over all streams, each a closed loop of greedy requests of ${NEW_TOKENS} new tokens (end of sequence ignored) for ${SECONDS} s, prompts as long as the oracle's first prompt for the file ('Once upon a time': 4 or 5 tokens), whose first token is kept and the rest vary per request; TTFT included. node-llama-cpp at 16 streams: one context with 16 sequences, whose steps llama.cpp batches together. Nucleus runs each file twice: as configured by default (\`models[].quantizedMatmul\` unset: quantized weights multiplied in float32, MatMulNBits accuracy level 0) and with \`quantizedMatmul: int8\` (activations quantized per block, as llama.cpp does); the second is configured at start-up. node-llama-cpp also runs with 1 thread, since llama.cpp's threads wait for each other by spinning and on this 2-core machine its 2 threads ran many times slower than 1 on these small models, even with the machine otherwise idle. Ratio: Nucleus over the faster of node-llama-cpp's two thread counts, at 1 / 16 streams.`,
    `- Greedy: how many of the first ${NEW_TOKENS} greedy ids, from the oracle's prompt, equal llama.cpp's (\`refs/<file>.json\`; for stories260K, node-llama-cpp's); these random-weight models have small logit gaps, so a quantized runtime computing in another order may leave the reference early without being wrong (see the oracle README's tolerances).`,
    '- A file the Nucleus loader refuses shows its message instead of numbers.',
    '',
  ].join('\n');
  // The record names files, not where this machine keeps them.
  const recorded = rows.map(({ subject: { path: _, ...subject }, ...measured }) => ({ subject, ...measured }));
  // A run limited to some files is recorded apart, so the full table stays whole.
  const record = ONLY ? `gguf-quants-${ONLY.join('-')}` : 'gguf-quants';
  return recordDocument(record, markdown, { suite: 'gguf', machine, loadBefore, rows: recorded });
}
