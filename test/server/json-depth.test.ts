import { strict as assert } from 'node:assert';
import { jsonNestsDeeperThan } from '@nucleus/core/internal/server/json-depth';

const utf8 = (text: string) => new TextEncoder().encode(text);
const nested = (levels: number) => `${'['.repeat(levels)}1${']'.repeat(levels)}`;

describe('the JSON depth check', () => {
  it('finds nesting past the limit in bytes and in strings, and none at the limit', () => {
    for (const form of [utf8, (t: string) => t]) {
      assert.equal(jsonNestsDeeperThan(form(nested(64)), 64), false);
      assert.equal(jsonNestsDeeperThan(form(nested(65)), 64), true);
      assert.equal(jsonNestsDeeperThan(form(`{"a":${nested(10)}}`), 10), true);
    }
  });

  it('does not count brackets inside strings, escaped quotes included', () => {
    const text = JSON.stringify({ note: `${'['.repeat(500)} \\" ${'{'.repeat(500)}`, data: [[1, 2]] });
    assert.equal(jsonNestsDeeperThan(utf8(text), 3), false);
    assert.equal(jsonNestsDeeperThan(utf8(text), 2), true);
  });

  it('clears a large flat tensor body, and still finds depth past many shallow lists', () => {
    const data = Array.from({ length: 150_528 }, (_, i) => i / 7);
    const flat = JSON.stringify({ inputs: [{ name: 'x', shape: [1, 150_528], datatype: 'FP32', data }] });
    assert.equal(jsonNestsDeeperThan(utf8(flat), 4), false);
    assert.equal(jsonNestsDeeperThan(utf8(flat), 3), true);
    // Many brackets, few levels: the count does not settle it, the walk does.
    const rows = JSON.stringify({ data: Array.from({ length: 1000 }, () => [1, 2]) });
    assert.equal(jsonNestsDeeperThan(utf8(rows), 3), false);
    assert.equal(jsonNestsDeeperThan(utf8(`${rows.slice(0, -1)},"deep":${nested(3)}}`), 3), true);
  });

  it('reads a view into a larger buffer only within its bounds', () => {
    const whole = utf8(`${nested(10)}[1]`);
    assert.equal(jsonNestsDeeperThan(whole.subarray(20), 2), false);
    assert.equal(jsonNestsDeeperThan(whole.subarray(0, 20), 9), true);
  });
});
