// Where the resident memory of an idle `nucleus serve` goes: the whole process (anonymous against file-backed pages,
// the largest mappings, its threads), once ready and after a burst, and its CPU at rest. With BENCH_HTTP_BASE (a
// built checkout of the base commit, as for the http suite), the same rows for it, alternating runs. Three more rows
// split the total: the server with no model at all, with a worker thread per tensor model (none shared), and with
// two workers per model (twice the worker threads).
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { cpuSeconds, type HttpTarget } from './http-targets.js';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';
import { startServerProcess } from './server-process.js';
import { ensureWrk, runWrk } from './wrk.js';

const BASE = process.env.BENCH_HTTP_BASE;
const REPEATS = Number(process.env.BENCH_IDLE_REPEATS ?? 3);

/** One process's memory, in MiB, from /proc (Linux). */
interface MemoryPicture {
  rss: number;
  anonymous: number;
  fileBacked: number;
  threads: number;
  /** Resident MiB per mapping name (`[anon]` for unnamed ones), largest first. */
  mappings: Array<[string, number]>;
}

interface IdleRun {
  ready: MemoryPicture;
  afterBurst: number;
  idleCpuPercent: number;
}

const MiB = (kb: number) => kb / 1024;

function picture(pid: number): MemoryPicture {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN);
  const byName = new Map<string, number>();
  let name = '[anon]';
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (header) name = header[1] ? basename(header[1]) : '[anon]';
    const rss = /^Rss:\s+(\d+) kB/.exec(line);
    if (rss) byName.set(name, (byName.get(name) ?? 0) + Number(rss[1]));
  }
  const rss = field('Rss');
  const anonymous = field('Anonymous');
  return {
    rss: MiB(rss),
    anonymous: MiB(anonymous),
    fileBacked: MiB(rss - anonymous),
    threads: readdirSync(`/proc/${pid}/task`).length,
    mappings: [...byName]
      .map(([n, kb]): [string, number] => [n, MiB(kb)])
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4),
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `nucleus serve` with `args`, from this checkout or a built one at `checkout`; resolves once `/ready` answers 200. */
async function startServer(label: string, checkout: string | undefined, args: string[]): Promise<HttpTarget> {
  const cli = checkout ? join(checkout, 'core/dist/cli/main.js') : undefined;
  const server = await startServerProcess(args, {}, { ...(cli !== undefined && { cli }) });
  const deadline = Date.now() + 120_000;
  for (;;) {
    const res = await fetch(`${server.url}/ready`).catch(() => undefined);
    await res?.arrayBuffer();
    if (res?.status === 200) return { label, ...server };
    if (Date.now() > deadline) {
      await server.stop();
      throw new Error(`${label}: /ready did not answer 200 within 120 s`);
    }
    await sleep(250);
  }
}

/** A fresh server: memory 5 s after it is ready, RSS after a 3 s `/health` burst, CPU over 10 s from 2 s after it. */
async function idleRun(label: string, checkout: string | undefined, args: string[]): Promise<IdleRun> {
  const server = await startServer(label, checkout, args);
  try {
    await sleep(5000);
    const ready = picture(server.pid);
    await runWrk({ url: `${server.url}/health` }, { seconds: 3, connections: 64 });
    const afterBurst = picture(server.pid).rss;
    await sleep(2000);
    const before = cpuSeconds(server.pid) ?? NaN;
    await sleep(10_000);
    const idleCpuPercent = (((cpuSeconds(server.pid) ?? NaN) - before) / 10) * 100;
    return { ready, afterBurst, idleCpuPercent };
  } finally {
    await server.stop();
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? NaN;
}

const f = (n: number, digits = 0) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');

/** `npm run bench -- idle-memory`. */
export async function idleMemorySuite(): Promise<string> {
  const missing = ensureWrk();
  if (missing) {
    const text = `idle-memory suite skipped: ${missing}`;
    process.stdout.write(`${text}\n`);
    return text;
  }
  const machine = machineInfo();
  const targets: Array<{ label: string; checkout?: string; args?: string[] }> = [
    ...(BASE ? [{ label: 'Nucleus before (base commit)', checkout: BASE }, { label: 'Nucleus after' }] : []),
    ...(BASE ? [] : [{ label: 'Nucleus' }]),
    { label: 'no model (builtin-models plugin off)', args: ['--set', 'plugins.disabled=builtin-models'] },
    {
      label: 'a thread per model (workers.shareBelowBytes=0)',
      args: ['--set', 'workers.shareBelowBytes=0'],
    },
    { label: 'two workers per model', args: ['--set', 'workers.perModel=2'] },
  ];
  const runs = new Map<string, IdleRun[]>(targets.map((t) => [t.label, []]));
  for (let round = 0; round < REPEATS; round++) {
    for (const t of targets) {
      const run = await idleRun(t.label, t.checkout, t.args ?? []);
      process.stdout.write(`${t.label}: ${f(run.ready.rss)} MiB ready, ${f(run.afterBurst)} MiB after a burst\n`);
      runs.get(t.label)!.push(run);
    }
  }
  const lines = [
    '# idle-memory benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
    `A fresh \`nucleus serve\` with its built-in models and default config, ${REPEATS} starts each (alternating), medians: resident memory 5 s after \`/ready\` answers 200 (from /proc/<pid>/smaps_rollup: anonymous pages, and file-backed ones such as the \`node\` binary and libonnxruntime), its threads, RSS after a 3 s \`wrk -c64\` burst of \`/health\`, then CPU over 10 s starting 2 s after the burst.`,
    '',
    '| run | RSS when ready, MiB | anonymous, MiB | file-backed, MiB | threads | RSS after a burst, MiB | idle CPU after the burst, % of a core | every run: ready MiB / after a burst MiB / idle CPU % |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
  ];
  for (const [label, list] of runs) {
    const m = (pick: (r: IdleRun) => number, digits = 0) => f(median(list.map(pick)), digits);
    lines.push(
      `| ${label} | ${m((r) => r.ready.rss)} | ${m((r) => r.ready.anonymous)} | ${m((r) => r.ready.fileBacked)} | ${m((r) => r.ready.threads)} | ${m((r) => r.afterBurst)} | ${m((r) => r.idleCpuPercent, 2)} | ${list.map((r) => `${f(r.ready.rss)} / ${f(r.afterBurst)} / ${f(r.idleCpuPercent, 1)}`).join(', ')} |`,
    );
  }
  lines.push('', '## Largest mappings when ready (first run)', '');
  for (const [label, list] of runs) {
    const first = list[0]!.ready.mappings.map(([n, mib]) => `${n} ${f(mib)} MiB`).join(', ');
    lines.push(`- ${label}: ${first}`);
  }
  lines.push(
    '',
    '## Notes',
    '',
    '- `nucleus serve` starts up (plugins, models, warm-up) with V8 set to optimize for size and restores its defaults once ready (`core/src/cli/lean-startup.ts`): start-up allocates far more than the server keeps, and with the defaults every heap grows to that peak and stays there.',
    '- Each model worker (a thread with its own V8 isolate and Node environment, plus its ORT session and compute thread) costs about 10 MiB: compare the row with two workers per model. An empty `worker_threads` Worker alone costs ~8.8 MiB on Node 20. So the models under `workers.shareBelowBytes` (default 8 MiB; all the built-in ones) share a worker thread of their kind: the 5 tensor models one, the 3 generation models (stories260K, tiny-llama, and bert-tiny as the embedding model, each with its generation loop, run in turn) another: compare the row with a thread per model. bert-tiny still opens twice, as a tensor model and as the embedding model (a 220 KiB graph: about 1 MiB).',
    '- The server with no model holds ~40 MiB of JavaScript heap on its main thread (the plugins and their modules), the largest part of its anonymous memory. A heap snapshot of the default server once ready (39.5 MiB): strings 12.7 MiB (mostly the source text of the modules loaded, which V8 keeps; the largest single one is the 0.9 MiB of code Ajv generated for the config schema), compiled code and bytecode 9.8 MiB, arrays 4.5 MiB, array buffers 3.1 MiB; no single module or cache stands out.',
    '- File-backed pages (the `node` binary, libonnxruntime) are ~80 MiB of the RSS and shared with any other Node process on the host.',
    '- Tried without measurable effect here (within the ±10 MiB between starts): `MALLOC_ARENA_MAX=2`, `plugin.backend-cpu.enableCpuMemArena: false`, one intra-op thread, a forced full GC once ready, smaller young generations for the workers (`resourceLimits.maxYoungGenerationSizeMb`).',
    '',
  );
  return recordDocument('idle-memory', lines.join('\n'), {
    suite: 'idle-memory',
    machine,
    runs: Object.fromEntries(runs),
  });
}
