import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { MachineInfo } from './machine.js';
import type { RunStats } from './stats.js';

/** One row of a result table. */
export interface ResultRow {
  label: string;
  stats: RunStats;
  /** Throughput relative to the suite's baseline row. */
  ratio?: number;
  note?: string;
}

/** A titled table of results. */
export interface ResultTable {
  title: string;
  unit: string;
  rows: ResultRow[];
}

const RESULTS = fileURLToPath(new URL('../results/', import.meta.url));

function fmt(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

/** Renders tables and the machine as Markdown. */
export function renderMarkdown(
  suite: string,
  machine: MachineInfo,
  tables: readonly ResultTable[],
  notes: readonly string[],
): string {
  const lines = [
    `# ${suite} benchmark`,
    '',
    `Recorded ${machine.date} on ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB (${machine.os}); Node ${machine.node}, onnxruntime-node ${machine.onnxruntime}.`,
    '',
  ];
  for (const t of tables) {
    lines.push(
      `## ${t.title}`,
      '',
      `| run | ${t.unit}/s | ratio | p50 ms | p99 ms | errors | note |`,
      '| --- | ---: | ---: | ---: | ---: | ---: | --- |',
    );
    for (const r of t.rows) {
      lines.push(
        `| ${r.label} | ${fmt(r.stats.throughput)} | ${r.ratio === undefined ? '' : fmt(r.ratio, 2)} | ${fmt(r.stats.p50Ms, 2)} | ${fmt(r.stats.p99Ms, 2)} | ${r.stats.errors} | ${r.note ?? ''} |`,
      );
    }
    lines.push('');
  }
  if (notes.length) lines.push('## Notes', '', ...notes.map((n) => `- ${n}`), '');
  return lines.join('\n');
}

/** Writes `<suite>.md` and `<suite>.json` under bench/results/ and returns the Markdown. */
export function record(
  suite: string,
  machine: MachineInfo,
  tables: readonly ResultTable[],
  notes: readonly string[],
): string {
  return recordDocument(suite, renderMarkdown(suite, machine, tables, notes), { suite, machine, tables, notes });
}

/** Writes a suite's own Markdown and JSON as `<name>.md` and `<name>.json` under bench/results/; returns the Markdown. */
export function recordDocument(name: string, markdown: string, data: unknown): string {
  mkdirSync(RESULTS, { recursive: true });
  writeFileSync(`${RESULTS}${name}.md`, markdown);
  writeFileSync(`${RESULTS}${name}.json`, `${JSON.stringify(data, null, 2)}\n`);
  return markdown;
}
