import { strict as assert } from 'node:assert';
import type { LogLine } from '@nucleus/sdk';
import { parseLogLine } from '@nucleus/core/internal/kernel/log-line';
import { createLogger, onLogLine } from '@nucleus/core/internal/kernel/logger';

describe('log lines for the log tail (log.line)', () => {
  for (const format of ['json', 'pretty'] as const) {
    it(`reduces each ${format} line a logger writes to time, level, message, component and request`, () => {
      const written: string[] = [];
      const logger = createLogger({
        level: 'info',
        format,
        destination: { write: (s: string) => void written.push(s) },
      });
      const lines: LogLine[] = [];
      const stop = onLogLine(logger, (line) => {
        const parsed = parseLogLine(line);
        if (parsed) lines.push(parsed);
      });
      const child = logger.child({ component: 'engine' });
      child.info({ requestId: 'req-1', model: 'story', prompt: 'a secret prompt', body: { messages: ['x'] } }, 'ran');
      child.debug('below the level: not written, not relayed');
      child.error({ err: new Error('it broke') }, 'failed');
      stop();
      child.warn('after stop: not relayed');
      assert.equal(lines.length, 2);
      assert.deepEqual(
        { ...lines[0], time: undefined },
        { time: undefined, level: 'info', msg: 'ran', component: 'engine', requestId: 'req-1', model: 'story' },
      );
      assert.ok(!Number.isNaN(Date.parse(lines[0]!.time)));
      assert.equal(lines[1]!.level, 'error');
      assert.equal(lines[1]!.error, 'it broke');
      assert.ok(!JSON.stringify(lines).includes('secret'), 'payload fields never reach the event');
      assert.ok(written.length >= 3, 'the destination still gets every line');
    });
  }

  it('cuts long messages and ignores what is not a log line', () => {
    assert.equal(parseLogLine('not json'), undefined);
    assert.equal(parseLogLine('{"msg":"no level"}'), undefined);
    const long = parseLogLine(
      JSON.stringify({ level: 'warn', time: '2026-01-01T00:00:00.000Z', msg: 'x'.repeat(5000) }),
    );
    assert.equal(long?.msg.length, 1000);
  });
});
