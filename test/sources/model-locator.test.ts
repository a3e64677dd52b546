import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { ModelLocator } from '@nucleus/core';
import type { ModelSourceProvider } from '@nucleus/sdk';
import { recordingLogger } from '@nucleus/sdk/testing';
import { tempDir } from '../helpers/paths.js';

// Core's side of model sources: which provider a scheme goes to, local paths as they were, sha256 pins on local files.

describe('ModelLocator: sources with a scheme go to the plugin that fetches them', () => {
  let dir: string;
  let file: string;
  const logger = recordingLogger();

  before(() => {
    dir = tempDir('locator');
    file = join(dir, 'model.gguf');
    writeFileSync(file, 'weights');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('leaves local paths (and Windows drive paths) to the file system, resolved from the working directory', async () => {
    const locator = new ModelLocator([], logger);
    assert.equal(await locator.locate('models/x.gguf'), resolve('models/x.gguf'));
    assert.equal(ModelLocator.schemeOf('C:\\models\\x.gguf'), undefined);
    assert.equal(ModelLocator.schemeOf('HF://org/repo'), 'hf');
  });

  it('refuses a scheme no provider handles with 400 unsupported_model_source listing those handled', async () => {
    const fake: ModelSourceProvider = { schemes: ['hf'], accepts: 'Hub models', fetch: async () => file };
    const err = await new ModelLocator([fake], logger).locate('s3://bucket/m.gguf').catch((e: unknown) => e);
    assert.deepEqual(
      [(err as { status: number }).status, (err as { code: string }).code],
      [400, 'unsupported_model_source'],
    );
    assert.match((err as Error).message, /s3:\/\/.*hf:\/\/ \(Hub models\)/);
    const none = await new ModelLocator([], logger).locate('hf://org/repo').catch((e: Error) => e);
    assert.match((none as Error).message, /No model source plugin is active/);
  });

  it('checks a sha256 pin on a local file, and passes it to a provider for a fetched one', async () => {
    const digest = createHash('sha256').update('weights').digest('hex');
    const locator = new ModelLocator([], logger);
    assert.equal(await locator.locate(file, { sha256: digest.toUpperCase() }), file);
    const wrong = await locator.locate(file, { sha256: '0'.repeat(64) }).catch((e: Error) => e);
    assert.equal((wrong as { code?: string }).code, 'model_sha256_mismatch');
    assert.match((wrong as Error).message, new RegExp(`has sha256 ${digest}, not the pinned 0{64}`));
    // A file replaced after a load that passed its pin is refused at the next load, by the same locator.
    const replaced = join(dirname(file), 'replaced.bin');
    writeFileSync(replaced, 'weights');
    assert.equal(await locator.locate(replaced, { sha256: digest }), replaced);
    writeFileSync(replaced, 'other weights');
    const swapped = await locator.locate(replaced, { sha256: digest }).catch((e: Error) => e);
    assert.equal((swapped as { code?: string }).code, 'model_sha256_mismatch');
    const seen: (string | undefined)[] = [];
    const provider: ModelSourceProvider = {
      schemes: ['hf'],
      accepts: 'Hub models',
      fetch: async (_, o) => {
        seen.push(o.sha256);
        return file;
      },
    };
    assert.equal(await new ModelLocator([provider], logger).locate('hf://o/r/m.gguf', { sha256: digest }), file);
    assert.deepEqual(seen, [digest]);
  });
});
