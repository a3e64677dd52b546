// Fuzz: the request fuzzer of `npm test` (test/server/fuzz.test.ts), run longer against a server with every plugin,
// the built-in models and keys. Records its status histogram, the rules it broke (none, we hope), and the heap.
import { NucleusServer } from '@nucleus/core';
import { type FuzzReport, RequestFuzzer } from '../../test/dist/helpers/request-fuzzer.js';
import { machineInfo } from './machine.js';
import { recordDocument } from './report.js';

const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 30_000);
const SEED = Number(process.env.FUZZ_SEED ?? 18);
const CONCURRENCY = Number(process.env.FUZZ_CONCURRENCY ?? 8);
const USER = 'bench-fuzz-user-key-0123456789';
const ADMIN = 'bench-fuzz-admin-key-0123456789';
const MiB = 1024 * 1024;

function heapMiB(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; gc && i < 3; i++) gc();
  return process.memoryUsage().heapUsed / MiB;
}

const table = (counts: Record<string, number>) => [
  '| | count |',
  '| --- | ---: |',
  ...Object.entries(counts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, n]) => `| ${k} | ${n} |`),
];

/** `npm run bench -- fuzz`: FUZZ_REQUESTS fuzzed requests (30,000 by default) at FUZZ_CONCURRENCY. */
export async function fuzzSuite(): Promise<string> {
  const machine = machineInfo();
  const server = await NucleusServer.start({
    env: {},
    builtinModels: true,
    cli: {
      'server.host': '127.0.0.1',
      'server.port': 0,
      'plugins.watch': false,
      'logging.level': 'silent',
      'auth.keys': [{ key: USER, role: 'user', name: 'fuzz-user' }],
      'auth.adminKey': ADMIN,
    },
  });
  let report: FuzzReport;
  let heap: { before: number; after: number };
  let seconds: number;
  try {
    const routes = server.http.routes.describe();
    const target = {
      port: Number(new URL(server.url).port),
      routes,
      userKey: USER,
      adminKey: ADMIN,
      models: ['tiny-llama', 'stories260K', 'bert-tiny', 'mlp-classifier'],
    };
    await new RequestFuzzer(target, SEED + 1).run(300, CONCURRENCY);
    const before = heapMiB();
    const started = performance.now();
    report = await new RequestFuzzer(target, SEED).run(REQUESTS, CONCURRENCY);
    seconds = (performance.now() - started) / 1000;
    heap = { before, after: heapMiB() };
    const ready = await fetch(`${server.url}/ready`);
    if (ready.status !== 200) report.failures.push({ ...report.slowest[0]!, failure: `/ready ${ready.status} after` });
  } finally {
    await server.stop();
  }
  const markdown = [
    '# fuzz benchmark',
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
    `${report.total} mutated requests (seed ${SEED}, ${CONCURRENCY} at a time) over every route of a server running every`,
    `plugin, the built-in models and a user and an admin key, in ${seconds.toFixed(0)} s; the same fuzzer as`,
    '`test/server/fuzz.test.ts` (`test/helpers/request-fuzzer.ts`), after a 300-request warm-up.',
    '',
    `**Rules broken: ${report.failures.length}** (a 5xx other than 503, or 501 for an unknown method; an error without a`,
    'JSON body naming its type and code; a dropped connection; no answer in 60 s).',
    '',
    `Heap after GC: ${heap.before.toFixed(1)} MiB before the run, ${heap.after.toFixed(1)} MiB after.`,
    '',
    '## Answers by status',
    '',
    ...table(report.statuses),
    '',
    '`abandoned`: the client sent half a body and hung up on purpose; no answer is owed. `reset while sending`: the',
    'server refused early (401, 413 …) and closed while the client was still writing its body, and the reset took',
    'the answer with it.',
    '',
    '## Requests by mutation',
    '',
    ...table(report.mutations),
    '',
    '## Slowest answers',
    '',
    '| ms | status | request | mutation |',
    '| ---: | --- | --- | --- |',
    ...report.slowest.map((o) => `| ${o.ms} | ${o.result} | ${o.method} ${o.path.slice(0, 60)} | ${o.mutation} |`),
    '',
    ...(report.failures.length
      ? [
          '## Broken rules',
          '',
          ...report.failures
            .slice(0, 50)
            .map((f) => `- ${f.result} ${f.method} ${f.path} [${f.mutation}]: ${f.failure}`),
          '',
        ]
      : []),
  ].join('\n');
  return recordDocument('fuzz', markdown, { machine, seed: SEED, concurrency: CONCURRENCY, seconds, heap, ...report });
}
