import { strict as assert } from 'node:assert';
import { createLogger } from '@nucleus/core/internal/kernel/logger';
import { LazyLogger } from '@nucleus/core/internal/server/lazy-logger';

type Line = Record<string, unknown> & { msg?: string; level?: string };

function logger(level: 'info' | 'debug') {
  const lines: Line[] = [];
  const root = createLogger({ level, destination: { write: (s: string) => void lines.push(JSON.parse(s) as Line) } });
  return { root, lines };
}

describe('request logger made on first use', () => {
  it('writes with its bindings and those of every child, at the levels of the logger it derives from', () => {
    const { root, lines } = logger('info');
    const request = new LazyLogger(root, { requestId: 'r1' });
    const span = request.child({ spanId: 'abc' });
    span.info({ model: 'm' }, 'hello');
    span.debug({ step: 1 }, 'dropped at info');
    request.warn('plain message');
    assert.deepEqual(
      lines.map((l) => [l.msg, l.level, l.requestId, l.spanId, l.model]),
      [
        ['hello', 'info', 'r1', 'abc', 'm'],
        ['plain message', 'warn', 'r1', undefined, undefined],
      ],
    );
    assert.equal(request.isLevelEnabled('debug'), false);
    assert.equal(request.isLevelEnabled('info'), true);
  });

  it('follows a level change made before it first writes', () => {
    const { root, lines } = logger('info');
    const request = new LazyLogger(root, { requestId: 'r2' });
    root.level = 'debug';
    request.child({ spanId: 'def' }).debug({ step: 2 }, 'now written');
    assert.deepEqual(
      lines.map((l) => [l.msg, l.requestId, l.spanId, l.step]),
      [['now written', 'r2', 'def', 2]],
    );
  });
});
