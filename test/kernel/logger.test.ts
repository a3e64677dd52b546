import { strict as assert } from 'node:assert';
import { createLogger, resolveLogFormat } from '@nucleus/core/internal/kernel/logger';

function sink(): { lines: string[]; write(line: string): void } {
  const lines: string[] = [];
  return { lines, write: (chunk: string) => void lines.push(...chunk.split('\n').filter((l) => l !== '')) };
}

describe('logger formats', () => {
  it('auto is pretty on a terminal and JSON when piped; json and pretty are forced', () => {
    assert.equal(resolveLogFormat('auto', { isTTY: true }), 'pretty');
    assert.equal(resolveLogFormat('auto', { isTTY: false }), 'json');
    assert.equal(resolveLogFormat('auto', {}), 'json');
    assert.equal(resolveLogFormat('json', { isTTY: true }), 'json');
    assert.equal(resolveLogFormat('pretty', { isTTY: false }), 'pretty');
  });

  it('pretty writes one line per event: time, level, message and the fields', () => {
    const out = sink();
    const logger = createLogger({ format: 'pretty', destination: out });
    logger.info({ model: 'mlp', durationMs: 12, nested: { a: [1, 2] } }, 'model loaded');
    logger.warn('careful');
    assert.equal(out.lines.length, 2, out.lines.join('\n'));
    assert.match(
      out.lines[0]!,
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: model loaded \{"model":"mlp","durationMs":12,"nested":\{"a":\[1,2\]\}\}$/,
    );
    assert.match(out.lines[1]!, /^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: careful$/);
  });

  it('json writes one object per line with the level as a name', () => {
    const out = sink();
    createLogger({ format: 'auto', destination: out }).info({ model: 'mlp' }, 'model loaded');
    const line = JSON.parse(out.lines[0]!) as Record<string, unknown>;
    assert.equal(line.level, 'info');
    assert.equal(line.msg, 'model loaded');
    assert.equal(line.service, 'nucleus');
  });
});
