import { readFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` (written by `node --cpu-prof`) that a summary reads. */
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time shares of one profile, busiest first. */
export interface ProfileSummary {
  /** Samples while the thread ran JavaScript, native code or the GC (not idle). */
  busySamples: number;
  /** The time those samples stand for, in ms. */
  busyMs: number;
  /** Share of busy samples by where the code lives: a package, a file of this repository, Node's own modules. */
  areas: Array<{ name: string; share: number }>;
  /** Share of busy samples by function. */
  functions: Array<{ name: string; share: number }>;
}

/** Shortens a script URL to where it lives: `koa`, `core/server/http-server.js`, `node:_http_server`. */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return url.replace('node:internal/', 'node:');
  const pkg = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (pkg) return pkg[1]!;
  const own = /\/(core|sdk|plugins\/[^/]+)\/dist\/(.+)$/.exec(url);
  if (own) return `${own[1]}/${own[2]}`;
  return url.replace(/^file:\/\//, '');
}

/** Microseconds on the monotonic clock V8 stamps its profiles with (CLOCK_MONOTONIC on Linux, as `process.hrtime`). */
export function monotonicMicros(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Sums the self time (samples) of a profile by area and by function, counting only the samples taken between `from`
 * and `to` (microseconds, `monotonicMicros()`), so start-up and shutdown stay out of it.
 */
export function summariseProfile(file: string, from = -Infinity, to = Infinity, top = 12): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const hitsOf = new Map<number, number>();
  const idle = new Set(profile.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
  let t = profile.startTime;
  let busyMicros = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (t < from || t > to) return;
    hitsOf.set(id, (hitsOf.get(id) ?? 0) + 1);
    if (!idle.has(id)) busyMicros += delta;
  });
  const areas = new Map<string, number>();
  const functions = new Map<string, number>();
  let busy = 0;
  for (const node of profile.nodes) {
    const hits = hitsOf.get(node.id) ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    if (!hits || functionName === '(idle)') continue;
    busy += hits;
    const area = areaOf(url, functionName);
    areas.set(area, (areas.get(area) ?? 0) + hits);
    const fn = url ? `${functionName || '(anonymous)'} (${area}:${lineNumber + 1})` : functionName || '(native)';
    functions.set(fn, (functions.get(fn) ?? 0) + hits);
  }
  const ranked = (m: Map<string, number>) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, hits]) => ({ name, share: busy ? hits / busy : 0 }));
  return { busySamples: busy, busyMs: busyMicros / 1000, areas: ranked(areas), functions: ranked(functions) };
}
