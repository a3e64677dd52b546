import assert from 'node:assert/strict';
import { copyFile, readdir, readFile, rm, open } from 'node:fs/promises';
import { join } from 'node:path';
import { STORIES_GGUF } from '@nucleus/plugin-builtin-models';
import { tempDir } from '../helpers/paths.js';
import { followServer, spawnServe, stopServer } from '../helpers/server-child.js';

// A restart loads the graph the first start built from the model cache; a changed source file gets a new one.

describe('the model graph cache across restarts', function () {
  this.timeout(180_000);
  let dir: string;
  before(() => {
    dir = tempDir('graph-cache');
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  /** Starts `nucleus serve` on the GGUF with the test's cache, waits until it listens, stops it. */
  async function startAndStop(gguf: string): Promise<void> {
    const child = spawnServe(`stories=${gguf}`, { NUCLEUS_CACHE_DIR: join(dir, 'cache') });
    const followed = followServer(child, 90_000);
    try {
      await followed.url;
    } finally {
      assert.equal(await stopServer(child), 0, followed.output());
    }
  }

  /** Each generated GGUF graph folder with its completion stamp (written once, when the graph is built). */
  async function graphs(): Promise<Map<string, string>> {
    const base = join(dir, 'cache', 'gguf');
    const out = new Map<string, string>();
    for (const name of await readdir(base)) {
      if (name.includes('.tmp-')) continue;
      out.set(name, await readFile(join(base, name, 'complete.json'), 'utf8'));
    }
    return out;
  }

  it('reuses the graph on a restart and builds a new one when the file changes', async () => {
    const gguf = join(dir, 'stories.gguf');
    await copyFile(STORIES_GGUF, gguf);
    await startAndStop(gguf);
    const first = await graphs();
    assert.equal(first.size, 1);

    await startAndStop(gguf);
    assert.deepEqual(await graphs(), first, 'the restart rebuilt the graph');

    // One weight changes (the file ends in tensor data): the file's hash, so the cache key, changes with it.
    const file = await open(gguf, 'r+');
    const { size } = await file.stat();
    const last = Buffer.alloc(1);
    await file.read(last, 0, 1, size - 1);
    await file.write(Buffer.from([last[0]! ^ 0x01]), 0, 1, size - 1);
    await file.close();
    await startAndStop(gguf);
    const after = await graphs();
    assert.equal(after.size, 2, 'the changed file reused the old graph');
    for (const [name, stamp] of first) assert.equal(after.get(name), stamp);
  });
});
