import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NucleusServer } from '@nucleus/core';
import {
  readPrefixCacheFile,
  writePrefixCacheFile,
} from '@nucleus/core/internal/engine/llm/prefix-cache/prefix-cache-file';
import { writeTestLlamaGguf } from '../llm-formats/gguf-fixtures.js';
import { tempDir } from '../helpers/paths.js';
import { pluginDir } from '../observability/helpers.js';

const IDENTITY = { modelSha256: 'a'.repeat(64), graphSha256: 'b'.repeat(64), graphStyle: 'contrib', blockTokens: 4 };

describe('prefix-cache files: written whole, read only when intact and made for this model', () => {
  let dir: string;
  before(() => {
    dir = tempDir('prefix-file');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads back what it wrote, and nothing is left beside the file', async () => {
    const path = join(dir, 'sub', 'one.nxpc');
    const payload = Uint8Array.from({ length: 1000 }, (_, i) => i % 251);
    await writePrefixCacheFile(path, IDENTITY, payload);
    const read = readPrefixCacheFile(path, IDENTITY);
    assert.ok('payload' in read);
    assert.deepEqual(new Uint8Array(read.payload), payload);
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['one.nxpc']);
    assert.deepEqual(readPrefixCacheFile(join(dir, 'none.nxpc'), IDENTITY), { absent: true });
  });

  it('ignores a file with a flipped byte, a cut-off one, a foreign one, and one for another model, saying why', async () => {
    const path = join(dir, 'two.nxpc');
    await writePrefixCacheFile(path, IDENTITY, new Uint8Array(4096).fill(7));
    const good = readFileSync(path);
    const flipped = Buffer.from(good);
    flipped[flipped.length - 10]! ^= 0xff;
    writeFileSync(path, flipped);
    assert.deepEqual(readPrefixCacheFile(path, IDENTITY), { ignored: 'its payload is corrupt (sha256 mismatch)' });
    writeFileSync(path, good.subarray(0, good.length - 100));
    assert.match((readPrefixCacheFile(path, IDENTITY) as { ignored: string }).ignored, /truncated/);
    writeFileSync(path, 'not a cache at all');
    assert.match((readPrefixCacheFile(path, IDENTITY) as { ignored: string }).ignored, /bad magic/);
    writeFileSync(path, good);
    const other = readPrefixCacheFile(path, { ...IDENTITY, graphSha256: 'c'.repeat(64) });
    assert.match((other as { ignored: string }).ignored, /written for graphSha256 b+, and this model has c+/);
    assert.ok('payload' in readPrefixCacheFile(path, IDENTITY));
  });
});

describe('prefix cache persistence: a restarted server starts with the prefix cache it had', () => {
  let dir: string;
  let gguf: string;
  const PROMPT = 'the abc the abc the abc the abc the abc the abc the abc the abc the abc the abc the abc';

  before(() => {
    dir = tempDir('prefix-persist');
    gguf = join(dir, 'tiny.gguf');
    writeTestLlamaGguf(gguf);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  /** Starts a server on the GGUF model with persistence on, runs one greedy completion, stops; what it saw and logged. */
  async function run(config: Record<string, unknown> = {}) {
    const lines: string[] = [];
    const server = await NucleusServer.start({
      env: {},
      pluginFolders: [],
      nodeModules: [],
      builtinModels: false,
      logDestination: { write: (line: string) => void lines.push(line) },
      cli: {
        'server.host': '127.0.0.1',
        'server.port': 0,
        'plugins.watch': false,
        'logging.level': 'info',
        'plugins.dirs': ['format-gguf', 'api-openai', 'cache-lru'].map(pluginDir),
        models: [{ name: 'tl', path: gguf }],
        'cache.dir': join(dir, 'cache'),
        'cache.prefix.persist': true,
        'cache.prefix.blockTokens': 4,
        ...config,
      },
    });
    let body: {
      choices: { message: { content: string } }[];
      usage: { prompt_tokens_details?: { cached_tokens: number } };
    };
    try {
      const res = await fetch(new URL('/v1/chat/completions', server.url), {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tl',
          messages: [{ role: 'user', content: PROMPT }],
          max_tokens: 6,
          temperature: 0,
        }),
      });
      assert.equal(res.status, 200);
      body = (await res.json()) as typeof body;
    } finally {
      await server.stop();
    }
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    return {
      text: body.choices[0]!.message.content,
      cached: body.usage.prompt_tokens_details?.cached_tokens ?? 0,
      logged,
    };
  }
  const files = () => readdirSync(join(dir, 'cache', 'prefix-cache'));
  const cacheFile = () => join(dir, 'cache', 'prefix-cache', files()[0]!);

  it('writes the cache at shutdown and serves the same prompt from it after a restart', async () => {
    const cold = await run();
    assert.equal(cold.cached, 0);
    const written = cold.logged.find((l) => l.msg === 'prefix cache written');
    assert.ok(
      written && (written.blocks as number) > 0,
      JSON.stringify(cold.logged.map((l) => [l.msg, l.err ?? l.reason])),
    );
    assert.equal(written.why, 'shutdown');
    assert.equal(files().length, 1);
    assert.match(files()[0]!, /^[0-9a-f]{64}-contrib-r0\.nxpc$/);

    const restarted = await run();
    const restored = restarted.logged.find((l) => l.msg === 'prefix cache restored');
    assert.ok(
      restored && (restored.blocks as number) === written.blocks,
      JSON.stringify(restarted.logged.map((l) => [l.msg, l.err ?? l.reason, l.blocks])),
    );
    assert.ok(restarted.cached >= 16, `cached tokens after the restart: ${restarted.cached}`);
    assert.equal(restarted.text, cold.text, 'the restored KV gives the same answer');
  });

  it('ignores a corrupt file with a log line and starts empty, answering as before', async () => {
    const bytes = readFileSync(cacheFile());
    bytes[bytes.length - 5]! ^= 0xff;
    writeFileSync(cacheFile(), bytes);
    const after = await run();
    const ignored = after.logged.find((l) => l.msg === 'prefix cache file ignored; the cache starts empty');
    assert.ok(ignored, 'a log line says the file was ignored');
    assert.equal(ignored.level, 'warn');
    assert.match(ignored.reason as string, /corrupt/);
    assert.equal(after.cached, 0);
    assert.ok(
      after.logged.some((l) => l.msg === 'prefix cache written'),
      'and a good file is written at shutdown',
    );
  });

  it('ignores a file written with another block size (or for another model), with a log line', async () => {
    const after = await run({ 'cache.prefix.blockTokens': 8 });
    const ignored = after.logged.find((l) => l.msg === 'prefix cache file ignored; the cache starts empty');
    assert.ok(ignored, JSON.stringify(after.logged.map((l) => l.msg)));
    assert.match(ignored.reason as string, /blockTokens 4, and this model has 8/);
    assert.equal(after.cached, 0);
  });
});
