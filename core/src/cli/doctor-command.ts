import { Command } from 'commander';
import { setOverrides, withConfigOptions, type ConfigOptions } from './cli-options.js';
import { runDoctor, type CheckResult, type CheckStatus } from './doctor-checks.js';
import { ExitCode } from './exit-codes.js';
import { NUCLEUS_VERSION } from './nucleus-version.js';

interface DoctorCommandOptions extends ConfigOptions {
  host?: string;
  port?: string;
  json?: boolean;
}

/** `nucleus doctor`: checks this machine and the config, and says what to fix; exits 1 when a check fails. */
export function doctorCommand(): Command {
  return withConfigOptions(new Command('doctor'))
    .description(
      'check Node.js, onnxruntime-node, memory, disk, the config, the port and the plugins, and say what to fix',
    )
    .option('-H, --host <host>', 'check this address instead of server.host')
    .option('-p, --port <port>', 'check this port instead of server.port')
    .option('--json', 'print JSON: { ok, checks: [{ name, status, message, fix }] }')
    .action(async (opts: DoctorCommandOptions) => {
      const cli: Record<string, unknown> = setOverrides(opts);
      if (opts.host !== undefined) cli['server.host'] = opts.host;
      if (opts.port !== undefined) cli['server.port'] = opts.port;
      const checks = await runDoctor({ file: opts.config, cli });
      const failed = checks.filter((c) => c.status === 'fail').length;
      if (opts.json) process.stdout.write(`${JSON.stringify({ ok: failed === 0, checks }, null, 2)}\n`);
      else process.stdout.write(formatChecks(checks, process.stdout.isTTY === true && !process.env.NO_COLOR));
      if (failed > 0) process.exitCode = ExitCode.failure;
    });
}

const COLORS: Record<CheckStatus, number> = { ok: 32, warn: 33, fail: 31 };

/** The checks as aligned lines, each fix indented under its check, and a last line counting problems. */
export function formatChecks(checks: CheckResult[], colors: boolean): string {
  const paint = (code: number, text: string): string => (colors ? `\x1b[${code}m${text}\x1b[0m` : text);
  const width = Math.max(...checks.map((c) => c.name.length)) + 2;
  const indent = ' '.repeat(2 + 6 + width);
  const lines = [`nucleus doctor ${NUCLEUS_VERSION}`, ''];
  for (const c of checks) {
    const [first, ...rest] = c.message.split('\n');
    lines.push(`  ${paint(COLORS[c.status], c.status.padEnd(6))}${c.name.padEnd(width)}${first}`);
    for (const line of rest) lines.push(indent + line);
    if (c.fix !== undefined && c.status !== 'ok') lines.push(`${indent}${paint(2, `fix: ${c.fix}`)}`);
  }
  const failed = checks.filter((c) => c.status === 'fail').length;
  const warned = checks.filter((c) => c.status === 'warn').length;
  lines.push('');
  if (failed + warned === 0) lines.push('everything looks fine');
  else
    lines.push(
      [failed > 0 ? `${failed} failed` : '', warned > 0 ? `${warned} warning${warned === 1 ? '' : 's'}` : '']
        .filter(Boolean)
        .join(', '),
    );
  return `${lines.join('\n')}\n`;
}
