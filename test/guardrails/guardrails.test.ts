import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';

const BIOME = join(REPO_ROOT, 'node_modules/.bin/biome');
const DEPCRUISE = join(REPO_ROOT, 'node_modules/.bin/depcruise');
const FIXTURES = join(REPO_ROOT, 'test/fixtures/guardrails');

interface Run {
  code: number;
  out: string;
}

/** Runs a CLI to its end and returns its exit code with stdout and stderr together. */
function run(file: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH ?? '', NO_COLOR: '1' };
    execFile(file, args, { cwd, env, encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : undefined;
      if (code === undefined) return reject(err);
      resolve({ code, out: `${stdout}\n${stderr}` });
    });
  });
}

/**
 * `biome ci` on one fixture file with the project's formatter and linter settings. biome.jsonc leaves
 * test/fixtures out of the tree's check, so the file is copied to a folder of its own whose config
 * extends biome.jsonc and takes back only the choice of files.
 */
async function biomeCi(fixture: string): Promise<Run> {
  const dir = mkdtempSync(join(tmpdir(), 'nucleus-biome-'));
  try {
    copyFileSync(join(FIXTURES, 'biome', fixture), join(dir, fixture));
    const config = { extends: [join(REPO_ROOT, 'biome.jsonc')], vcs: { enabled: false }, files: { includes: ['**'] } };
    writeFileSync(join(dir, 'biome.json'), JSON.stringify(config));
    return await run(BIOME, ['ci', '--colors=off', fixture], dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** depcruise with the project's rules over one fixture tree, laid out like the repository (plugins/, core/, sdk/). */
function depcruise(fixture: string): Promise<Run> {
  const args = ['--config', join(REPO_ROOT, '.dependency-cruiser.cjs'), '--output-type', 'err', '.'];
  return run(DEPCRUISE, args, join(FIXTURES, 'deps', fixture));
}

describe('guardrails: npm run lint and npm run deps fail CI on a violation', function () {
  this.timeout(120_000);

  describe('biome ci with biome.jsonc', () => {
    it('passes a file in the project style (single quotes, a 113-column line) with no lint finding', async () => {
      const res = await biomeCi('clean.ts');
      assert.equal(res.code, 0, res.out);
      assert.match(res.out, /Checked 1 file/);
    });

    it('fails a file with a line past 120 columns, naming the file and the formatting', async () => {
      const res = await biomeCi('too-long.ts');
      assert.notEqual(res.code, 0, res.out);
      assert.match(res.out, /too-long\.ts format/);
      assert.match(res.out, /File content differs from formatting output/);
    });

    it('fails a file that breaks a recommended lint rule, naming the file and the rule', async () => {
      const res = await biomeCi('lint-error.ts');
      assert.notEqual(res.code, 0, res.out);
      assert.match(res.out, /lint-error\.ts:2:3 lint\/suspicious\/noDebugger/);
    });
  });

  describe('depcruise with .dependency-cruiser.cjs', () => {
    it('passes a tree whose plugin imports only @nucleus/sdk and its own files, with no cycle', async () => {
      const res = await depcruise('clean');
      assert.equal(res.code, 0, res.out);
      assert.match(res.out, /no dependency violations found/);
    });

    it('fails a plugin importing @nucleus/core and a relative path into core, naming the rules', async () => {
      const res = await depcruise('plugin-imports-core');
      assert.notEqual(res.code, 0, res.out);
      assert.match(res.out, /plugin-imports-only-sdk: plugins\/bad\/src\/index\.ts → (\.\.\/)+core\/dist\/index\.js/);
      assert.match(res.out, /plugin-imports-only-sdk: plugins\/bad\/src\/index\.ts → core\/src\/kernel\/kernel\.ts/);
      assert.match(res.out, /plugin-stays-in-its-folder: plugins\/bad\/src\/index\.ts → core\/src\/kernel\/kernel\.ts/);
    });

    it('fails a plugin importing another plugin package', async () => {
      const res = await depcruise('plugin-imports-plugin');
      assert.notEqual(res.code, 0, res.out);
      assert.match(res.out, /plugin-imports-only-sdk: plugins\/bad\/src\/index\.ts → (\.\.\/)+plugins\/metrics\//);
    });

    it('fails the kernel importing an engine module', async () => {
      const res = await depcruise('kernel-imports-engine');
      assert.notEqual(res.code, 0, res.out);
      assert.match(
        res.out,
        /kernel-imports-no-engine: core\/src\/kernel\/kernel\.ts → core\/src\/engine\/inference-engine\.ts/,
      );
    });

    it('fails an import cycle, also when one direction is a type-only import', async () => {
      const res = await depcruise('cycle');
      assert.notEqual(res.code, 0, res.out);
      assert.match(res.out, /no-circular: sdk\/src\/graph\.ts →\s+sdk\/src\/node\.ts →\s+sdk\/src\/graph\.ts/);
    });
  });
});
