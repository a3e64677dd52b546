// Reload: what 300 hot reloads of a plugin leave in memory, with its files unchanged (an admin reload) and with a
// file touched before each one (an edit on disk: every reload then imports a new module generation, as every
// reload did before unchanged files reused theirs).
import { statSync, utimesSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NucleusServer } from '@nucleus/core';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';

const RELOADS = Number(process.env.RELOADS ?? 300);
const PLUGINS = ['api-openai', 'scheduler'];
const MiB = 1024 * 1024;

function memory(): { heap: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; gc && i < 3; i++) gc();
  const { heapUsed, rss } = process.memoryUsage();
  return { heap: heapUsed / MiB, rss: rss / MiB };
}

interface Row {
  plugin: string;
  files: 'unchanged' | 'touched';
  heapMiB: number;
  rssMiB: number;
  msPerReload: number;
}

async function measure(plugin: string, touch: boolean): Promise<Row> {
  const server = await NucleusServer.start({
    env: {},
    builtinModels: true,
    cli: {
      'server.host': '127.0.0.1',
      'server.port': 0,
      'plugins.watch': false,
      'logging.level': 'silent',
      'startup.warmUp': false,
    },
  });
  const entry = fileURLToPath(new URL(`../../plugins/${plugin}/dist/index.js`, import.meta.url));
  const { atime, mtime } = statSync(entry);
  const reload = async (i: number) => {
    if (touch) utimesSync(entry, atime, new Date(mtime.getTime() + (i + 1) * 1000));
    await server.kernel.plugins.reload(plugin);
  };
  try {
    for (let i = 0; i < 30; i++) await reload(i);
    const before = memory();
    const started = performance.now();
    for (let i = 30; i < 30 + RELOADS; i++) await reload(i);
    const ms = (performance.now() - started) / RELOADS;
    const after = memory();
    return {
      plugin,
      files: touch ? 'touched' : 'unchanged',
      heapMiB: after.heap - before.heap,
      rssMiB: after.rss - before.rss,
      msPerReload: ms,
    };
  } finally {
    utimesSync(entry, atime, mtime);
    await server.stop();
  }
}

/** `npm run bench -- reload`: RELOADS (300) reloads of api-openai and the scheduler, files unchanged and touched. */
export async function reloadSuite(): Promise<string> {
  const machine = machineInfo();
  const rows: Row[] = [];
  for (const plugin of PLUGINS) for (const touch of [false, true]) rows.push(await measure(plugin, touch));
  const markdown = [
    '# reload benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
    `Heap (after GC) and RSS added by ${RELOADS} hot reloads of one plugin, after 30 to warm up, in a server running`,
    'every plugin and the built-in models. `unchanged`: the plugin files are as they were (an admin reload); the module',
    'generation is reused, and only the activation is new. `touched`: a file of the plugin changes before each reload,',
    'so each imports a new module generation, which ESM cannot unload: this is what every reload cost before.',
    '',
    '| plugin | files | heap MiB | heap KiB / reload | RSS MiB | ms / reload |',
    '| --- | --- | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.plugin} | ${r.files} | ${r.heapMiB.toFixed(1)} | ${((r.heapMiB * 1024) / RELOADS).toFixed(1)} | ${r.rssMiB.toFixed(1)} | ${r.msPerReload.toFixed(1)} |`,
    ),
    '',
  ].join('\n');
  return recordDocument('reload', markdown, { machine, reloads: RELOADS, rows });
}
