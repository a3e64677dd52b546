// Cold start: time from `nucleus serve` being spawned to its first /readyz 200, with an empty model cache (the first
// start: graphs generated and hashed) and again with the cache the first start left (a restart).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';

const CLI = fileURLToPath(new URL('../../core/dist/cli/main.js', import.meta.url));
const GGUF = fileURLToPath(new URL('../../../shared/models/llm-oracle/llama3-tiny-F16.gguf', import.meta.url));
const RESTARTS = Number(process.env.COLDSTART_RESTARTS ?? 3);

interface Case {
  name: string;
  args: string[];
}

interface Row {
  case: string;
  start: 'first' | 'restart';
  msToReady: number;
  /** Generated graph folders in the cache after this start. */
  graphs: number;
}

/** Spawns `nucleus serve`, polls /readyz until 200, stops it: the milliseconds from spawn to ready. */
async function startToReady(args: string[], cacheDir: string): Promise<number> {
  const started = performance.now();
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--no-watch', ...args], {
    env: { PATH: process.env.PATH ?? '', NUCLEUS_CACHE_DIR: cacheDir, NUCLEUS_LOGGING_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  try {
    for (let i = 0; i < 6000; i++) {
      if (child.exitCode !== null) throw new Error(`nucleus serve exited with ${child.exitCode}:\n${out}`);
      const url = /nucleus listening on (http:\/\/[^\s"]+)/.exec(out)?.[1];
      if (url) {
        const ready = await fetch(`${url}/readyz`).then(
          (r) => r.status === 200,
          () => false,
        );
        if (ready) return performance.now() - started;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    throw new Error(`nucleus serve was not ready in 120 s:\n${out}`);
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
}

// The graph folders Nucleus generated (each marked by complete.json), and the built-in models' version folders.
function graphCount(cacheDir: string): number {
  let n = 0;
  const walk = (dir: string, depth: number) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const path = join(dir, entry.name);
      if (existsSync(join(path, 'model.onnx'))) n++;
      else if (depth < 3) walk(path, depth + 1);
    }
  };
  if (existsSync(cacheDir)) walk(cacheDir, 0);
  return n;
}

/** `npm run bench -- coldstart`: the built-in models and a GGUF, each with an empty cache, then restarted. */
export async function coldstartSuite(): Promise<string> {
  const machine = machineInfo();
  const cases: Case[] = [{ name: 'built-in models (no --model)', args: [] }];
  if (existsSync(GGUF)) cases.push({ name: 'llama3-tiny-F16.gguf (45 MB)', args: ['--model', `llama3-tiny=${GGUF}`] });
  const rows: Row[] = [];
  for (const c of cases) {
    const cacheDir = mkdtempSync(join(tmpdir(), 'nucleus-coldstart-'));
    try {
      rows.push({ case: c.name, start: 'first', msToReady: await startToReady(c.args, cacheDir), graphs: 0 });
      rows.at(-1)!.graphs = graphCount(cacheDir);
      for (let i = 0; i < RESTARTS; i++) {
        const ms = await startToReady(c.args, cacheDir);
        rows.push({ case: c.name, start: 'restart', msToReady: ms, graphs: graphCount(cacheDir) });
      }
    } finally {
      rmSync(cacheDir, { recursive: true, force: true });
    }
  }
  const markdown = [
    '# coldstart benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
    'Milliseconds from spawning `nucleus serve` to its first `/readyz` 200 (polled every 20 ms), CPU backend. `first`:',
    'an empty model cache (`NUCLEUS_CACHE_DIR`), so the built-in models and every graph are generated and the sources',
    `hashed; \`restart\`: ${RESTARTS} starts on the cache the first left. \`graphs\`: generated ONNX graph folders in`,
    'the cache after the start — a restart adds none.',
    '',
    '| case | start | ms to ready | graphs in cache |',
    '| --- | --- | ---: | ---: |',
    ...rows.map((r) => `| ${r.case} | ${r.start} | ${Math.round(r.msToReady)} | ${r.graphs} |`),
    '',
  ].join('\n');
  return recordDocument('coldstart', markdown, { machine, restarts: RESTARTS, rows });
}
