import { strict as assert } from 'node:assert';
import { psi, ReferenceProfile } from '@nucleus/plugin-model-insight';

describe('drift statistics on a small fixed sample, against values worked out by hand', () => {
  const reference = [[1], [2], [3], [4], [5], [6], [7], [8], [9], [10]];
  const live = [0, 2.5, 3.5, 5, 5, 7, 9.5, 11, 12, 12];
  const profile = ReferenceProfile.fromRows('uploaded', reference, ['x']);

  it('cuts the reference into deciles and measures PSI over them', () => {
    // Deciles of 1..10: inner edges 1..9; bin i holds (i, i+1], the first ≤ 1, the last > 9.
    assert.deepEqual(profile.edges(0), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(profile.expectedShares(0), new Array(10).fill(0.1));
    // Live counts per bin: ≤1: {0}; (2,3]: {2.5}; (3,4]: {3.5}; (4,5]: {5,5}; (6,7]: {7}; >9: {9.5,11,12,12}.
    const actual = [0.1, 0, 0.1, 0.1, 0.2, 0, 0.1, 0, 0, 0.4];
    let expected = 0;
    for (const a of actual) {
      const floored = Math.max(a, 1e-4);
      expected += (floored - 0.1) * Math.log(floored / 0.1);
    }
    // Written out: four empty bins at (1e-4 − 0.1)·ln(1e-3), one at 0.2 and one at 0.4.
    const byHand = 4 * (1e-4 - 0.1) * Math.log(1e-3) + 0.1 * Math.log(2) + 0.3 * Math.log(4);
    assert.ok(Math.abs(expected - byHand) < 1e-12);
    const shares = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const edges = profile.edges(0);
    for (const v of live) shares[edges.filter((e) => v > e).length]! += 0.1;
    assert.ok(Math.abs(psi(profile.expectedShares(0), shares) - byHand) < 1e-9);
  });

  it('measures KS as the largest gap between the two empirical distribution functions', () => {
    // Brute force: both ECDFs at every point of either sample.
    const ecdf = (sample: number[], x: number) => sample.filter((v) => v <= x).length / sample.length;
    const ref = reference.map((r) => r[0]!);
    let d = 0;
    for (const x of [...ref, ...live]) d = Math.max(d, Math.abs(ecdf(ref, x) - ecdf(live, x)));
    assert.ok(Math.abs(d - 0.3) < 1e-12, `by hand the gap is 0.3 at x = 10 (1.0 vs 0.7); brute force gave ${d}`);
    const sorted = [...live].sort((a, b) => a - b);
    assert.ok(Math.abs(profile.ks(0, sorted) - 0.3) < 1e-12);
  });

  it('measures KS against declared means and stds as a normal distribution', () => {
    const declared = ReferenceProfile.fromDocument('training', { features: [{ name: 'x', mean: 0, std: 1 }] }, 1, [
      'x',
    ]);
    // One value at the mean: the ECDF jumps from 0 to 1 where Φ is 0.5, a gap of 0.5 either side.
    assert.ok(Math.abs(declared.ks(0, [0]) - 0.5) < 1e-6);
  });
});
