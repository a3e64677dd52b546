import { describeSource } from '../kernel/config/index.js';
import type { NucleusServer } from '../server/nucleus-server.js';

/** What `nucleus serve` tells its user once it listens: the same facts as a banner on a terminal or one JSON line. */
export interface StartupSummary {
  version: string;
  url: string;
  /** Every model with the backend it runs on, or its state when it does not serve. */
  models: { name: string; kind: 'tensor' | 'llm' | 'embedding'; backend?: string; state: string }[];
  plugins: { active: number; failed: number; total: number };
  /** Where the config came from: the file, the env vars and the command-line keys that set something. */
  config: { file?: string; env: string[]; cli: string[] };
  readyInMs: number;
  stop: string;
}

/** Gathers the summary from a started server. */
export function startupSummary(
  server: NucleusServer,
  version: string,
  readyInMs: number,
  terminal: boolean,
): StartupSummary {
  const { kernel } = server;
  const models: StartupSummary['models'] = [];
  for (const model of kernel.inference.list()) {
    const version = model.versions.find((v) => v.version === model.defaultVersion) ?? model.versions[0];
    models.push({
      name: model.name,
      kind: 'tensor',
      state: version?.state ?? 'unknown',
      ...(version?.status?.backend !== undefined && { backend: version.status.backend }),
    });
  }
  for (const model of kernel.generation.list())
    models.push({
      name: model.name,
      kind: model.kind,
      state: model.state,
      ...(model.backend !== undefined && { backend: model.backend }),
    });
  const plugins = kernel.plugins.list();
  const config: StartupSummary['config'] = { env: [], cli: [] };
  for (const [path, source] of kernel.config.sources()) {
    if (source.kind === 'file' && source.name !== undefined) config.file = source.name;
    if (source.kind === 'env' && source.name !== undefined && !config.env.includes(source.name))
      config.env.push(source.name);
    if (source.kind === 'cli') config.cli.push(path);
  }
  return {
    version,
    url: server.url,
    models,
    plugins: {
      active: plugins.filter((p) => p.state === 'active').length,
      failed: plugins.filter((p) => p.state === 'failed').length,
      total: plugins.length,
    },
    config,
    readyInMs: Math.round(readyInMs),
    // A terminal user presses keys; a supervisor sends signals. Either way requests in flight finish first.
    stop: terminal ? 'press Ctrl+C' : 'send SIGINT or SIGTERM',
  };
}

/** The summary as one JSON log line, shaped like the logger's lines (level, time, service, msg). */
export function startupLine(summary: StartupSummary, now = new Date()): string {
  return `${JSON.stringify({
    level: 'info',
    time: now.toISOString(),
    service: 'nucleus',
    msg: `nucleus listening on ${summary.url}`,
    ...summary,
  })}\n`;
}

/** The summary as a few lines for a terminal; `colors` adds ANSI colours. */
export function startupBanner(summary: StartupSummary, colors: boolean): string {
  const paint = (code: number, text: string): string => (colors ? `\x1b[${code}m${text}\x1b[0m` : text);
  const bold = (text: string) => paint(1, text);
  const dim = (text: string) => paint(2, text);
  const green = (text: string) => paint(32, text);
  const cyan = (text: string) => paint(36, text);
  const yellow = (text: string) => paint(33, text);
  const describe = (m: StartupSummary['models'][number]): string => {
    const kind = m.kind === 'embedding' ? 'embeddings, ' : '';
    if (m.state === 'ready' && m.backend !== undefined) return `${m.name} ${dim(`(${kind}${m.backend})`)}`;
    if (m.state === 'idle') return `${m.name} ${dim(`(${kind}starts on first request)`)}`;
    return `${m.name} ${yellow(`(${kind}${m.state})`)}`;
  };
  const list = (models: StartupSummary['models']) =>
    models.length === 0 ? dim('none') : models.map(describe).join(', ');
  const { active, failed, total } = summary.plugins;
  const plugins =
    `${active} active` +
    (failed > 0 ? `, ${yellow(`${failed} failed`)} (nucleus plugins list)` : '') +
    dim(` of ${total}`);
  const sources = [
    summary.config.file !== undefined ? describeSource({ kind: 'file', name: summary.config.file }) : undefined,
    summary.config.env.length > 0 ? `env ${summary.config.env.join(', ')}` : undefined,
    summary.config.cli.length > 0 ? `command line (${summary.config.cli.join(', ')})` : undefined,
  ].filter((s) => s !== undefined);
  const config =
    (sources.length > 0 ? `defaults + ${sources.join(' + ')}` : 'defaults') + dim('  (nucleus config print)');
  const row = (label: string, value: string) => `   ${dim(label.padEnd(9))}${value}`;
  return [
    '',
    `  ${bold('Nucleus')} ${summary.version}  ${dim(`ready in ${(summary.readyInMs / 1000).toFixed(1)} s`)}`,
    '',
    `  ${green('➜')}  nucleus listening on ${cyan(bold(summary.url))}`,
    row('models', list(summary.models.filter((m) => m.kind === 'tensor'))),
    row('llms', list(summary.models.filter((m) => m.kind !== 'tensor'))),
    row('plugins', plugins),
    row('config', config),
    row('stop', `${summary.stop} ${dim('(requests in flight finish first)')}`),
    '',
    '',
  ].join('\n');
}
