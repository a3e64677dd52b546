import { strict as assert } from 'node:assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';

describe('self-contained release tarball (pack-tarball.sh)', function () {
  this.timeout(300_000);

  it('unpacks into a tree whose bin/nucleus runs on its own Node, with onnxruntime-node and every plugin', function () {
    if (process.platform !== 'linux') {
      console.log('      skipped: the tarball is built on Linux only');
      this.skip();
    }
    const out = tempDir('release');
    try {
      packAndRun(out);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

/** Packs the release into `out`, unpacks it there and runs `bin/nucleus version --json` from it. */
function packAndRun(out: string): void {
  const pack = spawnSync(join(REPO_ROOT, 'deploy/release/pack-tarball.sh'), [out], {
    encoding: 'utf8',
    timeout: 240_000,
    // The fastest gzip: the test checks what is packed, not how small.
    env: { ...process.env, NUCLEUS_GZIP_LEVEL: '1' },
  });
  assert.equal(pack.status, 0, pack.stderr);
  const tarball = /pack-tarball: (\S+\.tar\.gz)/.exec(pack.stdout)![1]!;
  const root = join(out, 'unpacked');
  assert.equal(spawnSync('sh', ['-c', `mkdir -p "${root}" && tar -C "${root}" -xzf "${tarball}"`]).status, 0);
  const dir = join(root, /([^/]+)\.tar\.gz$/.exec(tarball)![1]!);
  assert.ok(!existsSync(join(dir, 'node_modules/mocha')), 'no development dependency');

  // Only the launcher's directory: no PATH, so the Node beside it is the one that runs.
  const run = spawnSync(join(dir, 'bin/nucleus'), ['version', '--json'], { encoding: 'utf8', env: {}, cwd: out });
  assert.equal(run.status, 0, run.stderr);
  const report = JSON.parse(run.stdout) as { nucleus: string; onnxruntimeNode: string; plugins: { id: string }[] };
  assert.equal(report.nucleus, JSON.parse(readFileSync(join(REPO_ROOT, 'core/package.json'), 'utf8')).version);
  const ort = JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules/onnxruntime-node/package.json'), 'utf8'));
  assert.equal(report.onnxruntimeNode, ort.version);
  assert.ok(report.plugins.some((p) => p.id === 'backend-cpu'));
}
