import { strict as assert } from 'node:assert';
import { leanStartup, startedOptimizedForSize } from '@nucleus/core/internal/cli/lean-startup';

describe('lean start-up (V8 favours memory while the server starts)', () => {
  it('hands back what the start-up returns, and its error', async () => {
    assert.equal(await leanStartup(async () => 42), 42);
    await assert.rejects(
      leanStartup(async () => {
        throw new Error('port in use');
      }),
      /port in use/,
    );
    // Still usable after a failed start: the flag was restored, not left half-set.
    assert.equal(await leanStartup(async () => 'again'), 'again');
  });

  it('leaves --optimize-for-size on when the user started Node with it, on the command line or in NODE_OPTIONS', () => {
    assert.equal(startedOptimizedForSize([], undefined), false);
    assert.equal(startedOptimizedForSize(['--expose-gc'], '--max-old-space-size=512'), false);
    assert.equal(startedOptimizedForSize(['--optimize-for-size'], undefined), true);
    assert.equal(startedOptimizedForSize(['--optimize_for_size'], undefined), true);
    assert.equal(startedOptimizedForSize([], '--max-old-space-size=512 --optimize-for-size'), true);
    assert.equal(startedOptimizedForSize([], '--optimize-for-size-x'), false);
  });
});
