import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { runCli } from '../helpers/run-cli.js';

// The port the gRPC API takes when a server runs on its default HTTP port.
const GRPC_PORT = 8001;

describe('one-shot commands open no listeners of their own', () => {
  let held: Server | undefined;
  let cache: string;
  before(async () => {
    cache = tempDir('one-shot');
    // Taken here, or already taken by something else on this host: either way a command that bound it would fail.
    const server = createServer();
    held = await new Promise<Server | undefined>((resolve) => {
      server.once('error', () => resolve(undefined));
      server.listen(GRPC_PORT, '127.0.0.1', () => resolve(server));
    });
  });
  after(async () => {
    await new Promise((resolve) => (held ? held.close(resolve) : resolve(undefined)));
    rmSync(cache, { recursive: true, force: true });
  });

  it('`models ls --json` prints only its JSON while another process holds the gRPC port', async function () {
    this.timeout(120_000);
    const run = await runCli(['models', 'ls', '--json'], { HF_HUB_CACHE: join(cache, 'hub') }, 90_000);
    assert.equal(run.code, 0, run.err);
    assert.doesNotMatch(`${run.out}\n${run.err}`, /EADDRINUSE|grpc/i);
    assert.deepEqual(JSON.parse(run.out), []);
  });
});
