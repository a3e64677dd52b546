import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import { runCli } from '../helpers/run-cli.js';

const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;

describe('nucleus version', function () {
  this.timeout(60_000);

  it('--json names Nucleus, Node, onnxruntime-node and every plugin folder with its manifest version', async () => {
    const run = await runCli(['version', '--json']);
    assert.equal(run.code, 0, run.err);
    const report = JSON.parse(run.out) as {
      nucleus: string;
      node: string;
      onnxruntimeNode: string;
      plugins: { id: string; version: string; source: string }[];
    };
    assert.equal(report.nucleus, readJson(join(REPO_ROOT, 'core/package.json')).version);
    assert.equal(report.node, process.versions.node);
    assert.equal(
      report.onnxruntimeNode,
      readJson(join(REPO_ROOT, 'node_modules/onnxruntime-node/package.json')).version,
    );
    const folders = readdirSync(join(REPO_ROOT, 'plugins')).map((dir) => {
      const manifest = readJson(join(REPO_ROOT, 'plugins', dir, 'package.json')).nucleus as {
        id: string;
        version: string;
      };
      return { id: manifest.id, version: manifest.version };
    });
    assert.ok(folders.length >= 10);
    for (const f of folders)
      assert.deepEqual(
        report.plugins.filter((p) => p.id === f.id).map((p) => ({ id: p.id, version: p.version })),
        [f],
        `plugin ${f.id}`,
      );
  });

  it('prints a table without --json, and exits 2 on a config it cannot read', async () => {
    const run = await runCli(['version']);
    assert.equal(run.code, 0, run.err);
    assert.match(run.out, /^nucleus \d+\.\d+\.\d+/m);
    assert.match(run.out, /^onnxruntime-node \d+\.\d+\.\d+/m);
    assert.match(run.out, /^metrics\s+\d+\.\d+\.\d+\s+folder/m);
    const bad = await runCli(['version', '--set', 'server.port=abc']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /server\.port/);
  });
});
