import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { STORIES_GGUF } from '@nucleus/plugin-builtin-models';
import assert from 'node:assert/strict';
import { CLI, REPO_ROOT, tempDir } from '../helpers/paths.js';
import { followServer, stopServer } from '../helpers/server-child.js';
import { haproxyConfig } from './haproxy-config.js';

// Three `nucleus serve` processes behind a real HAProxy, as a user would run them: a conversation stays on one
// instance, a rolling restart loses nothing, and a crash loses only what the crashed instance held.

const MODEL = 'stories260K';
const NAMES = ['n1', 'n2', 'n3'] as const;
const WORKERS = 4;

function findHaproxy(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/local/sbin']) {
    const path = join(dir, 'haproxy');
    if (dir && existsSync(path) && spawnSync(path, ['-v']).status === 0) return path;
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** One request of the load: how it ended, and which instance answered (HAProxy's `x-served-by`). */
interface Outcome {
  status: number;
  idempotent: boolean;
  servedBy: string | undefined;
  /** Why the client got no answer at all (status 0). */
  error?: string;
}

async function chat(
  url: string,
  conversation: string,
  messages: { role: string; content: string }[],
  idempotent: boolean,
): Promise<Outcome & { cachedTokens: number; content: string }> {
  try {
    const res = await fetch(`${url}/v1/chat/completions`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-conversation-id': conversation,
        ...(idempotent && { 'idempotency-key': `${conversation}-${messages.length}` }),
      },
      body: JSON.stringify({ model: MODEL, messages, max_tokens: 8, temperature: 0 }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json()) as {
      choices?: { message: { content: string } }[];
      usage?: { prompt_tokens_details?: { cached_tokens?: number } };
    };
    return {
      status: res.status,
      idempotent,
      servedBy: res.headers.get('x-served-by') ?? undefined,
      cachedTokens: body.usage?.prompt_tokens_details?.cached_tokens ?? 0,
      content: body.choices?.[0]?.message.content ?? '',
    };
  } catch (err) {
    const error = String((err as Error).cause ?? err);
    return { status: 0, idempotent, servedBy: undefined, cachedTokens: 0, content: '', error };
  }
}

/** `WORKERS` loops of one chat request after another, every other one idempotent, until stopped (or 2000 each). */
function startLoad(url: string): { stop(): Promise<Outcome[]> } {
  let stopped = false;
  const outcomes: Outcome[] = [];
  const loops = Array.from({ length: WORKERS }, async (_, w) => {
    for (let i = 0; !stopped && i < 2000; i++) {
      const conversation = `load-${w}-${i}`;
      const content = `Once upon a time ${w} ${i} there was a`;
      outcomes.push(await chat(url, conversation, [{ role: 'user', content }], i % 2 === 0));
    }
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      return outcomes;
    },
  };
}

const running = (child: ChildProcess) => child.exitCode === null && child.signalCode === null;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function tally(outcomes: Outcome[]): string {
  const by = (pick: (o: Outcome) => string) => {
    const counts = new Map<string, number>();
    for (const o of outcomes) counts.set(pick(o), (counts.get(pick(o)) ?? 0) + 1);
    return [...counts].map(([k, n]) => `${k}: ${n}`).join(', ');
  };
  return `${outcomes.length} requests (status ${by((o) => String(o.status))}; instance ${by((o) => o.servedBy ?? '-')})`;
}

describe('several instances behind HAProxy', function () {
  this.timeout(240_000);
  let haproxyPath: string | undefined;
  let dir: string;
  let haproxy: ChildProcess | undefined;
  let haproxyOutput = '';
  const instances = new Map<string, { port: number; child: ChildProcess; output: () => string }>();
  let url: string;
  let statsUrl: string;

  async function startInstance(name: string, port: number): Promise<void> {
    const child = spawn(
      process.execPath,
      [
        CLI,
        'serve',
        '--host',
        '127.0.0.1',
        '--port',
        String(port),
        '--no-watch',
        '--model',
        `${MODEL}=${STORIES_GGUF}`,
      ],
      {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env.PATH ?? '',
          NUCLEUS_CACHE_DIR: join(dir, 'cache'),
          NUCLEUS_LOGGING_LEVEL: 'warn',
          NUCLEUS_SERVER_SHUTDOWN_TIMEOUT_MS: '20000',
          // HAProxy checks every 500 ms and marks an instance down after 2 failures.
          NUCLEUS_SERVER_DRAIN_DELAY_MS: '1500',
        },
      },
    );
    const followed = followServer(child, 90_000);
    instances.set(name, { port, child, output: followed.output });
    await followed.url;
  }

  /** The status HAProxy's health checks give each instance of the `nucleus` backend, and the backend's counters. */
  async function stats(): Promise<{ status: Map<string, string>; retries: number; redispatches: number }> {
    const csv = await (await fetch(`${statsUrl};csv`, { signal: AbortSignal.timeout(5_000) })).text();
    const [header, ...rows] = csv.trim().split('\n');
    const columns = header!.replace(/^# /, '').split(',');
    const col = (row: string[], name: string) => row[columns.indexOf(name)] ?? '';
    const status = new Map<string, string>();
    let retries = 0;
    let redispatches = 0;
    for (const line of rows) {
      const row = line.split(',');
      if (!col(row, 'pxname').startsWith('nucleus')) continue;
      if (col(row, 'svname') === 'BACKEND') {
        retries += Number(col(row, 'wretr') || 0);
        redispatches += Number(col(row, 'wredis') || 0);
      } else if (col(row, 'pxname') === 'nucleus') status.set(col(row, 'svname'), col(row, 'status'));
    }
    return { status, retries, redispatches };
  }

  async function waitForStatus(name: string, wanted: 'UP' | 'DOWN'): Promise<void> {
    for (let i = 0; i < 300 && haproxy !== undefined && running(haproxy); i++) {
      // Until HAProxy listens, its page refuses the connection: try again.
      const status = await stats().then(
        (s) => s.status.get(name),
        () => undefined,
      );
      if (status?.startsWith(wanted)) return;
      await sleep(200);
    }
    throw new Error(`HAProxy never saw ${name} ${wanted}; haproxy said:\n${haproxyOutput}`);
  }

  before(async function () {
    haproxyPath = findHaproxy();
    if (!haproxyPath) {
      console.log('      skipped: haproxy is not installed (apt-get install haproxy; .ci/run installs it)');
      this.skip();
    }
    dir = tempDir('haproxy');
    const ports = await Promise.all([...NAMES, 'lb', 'stats'].map(() => freePort()));
    const servers = NAMES.map((name, i) => ({ name, port: ports[i]! }));
    const [port, statsPort] = ports.slice(NAMES.length) as [number, number];
    url = `http://127.0.0.1:${port}`;
    statsUrl = `http://127.0.0.1:${statsPort}/stats`;
    // The first start builds the model's graph into the shared cache; the others then load it from there.
    await startInstance(servers[0]!.name, servers[0]!.port);
    await Promise.all(servers.slice(1).map((s) => startInstance(s.name, s.port)));
    const config = join(dir, 'haproxy.cfg');
    await writeFile(config, haproxyConfig({ port, statsPort, servers }));
    // -db: in the foreground, not a daemon, so it ends with the test.
    haproxy = spawn(haproxyPath!, ['-db', '-f', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    haproxy.stdout!.on('data', (d: Buffer) => (haproxyOutput += d.toString()));
    haproxy.stderr!.on('data', (d: Buffer) => (haproxyOutput += d.toString()));
    for (const name of NAMES) await waitForStatus(name, 'UP');
  });

  after(async () => {
    if (haproxy && running(haproxy)) await stopServer(haproxy);
    await Promise.all([...instances.values()].map((i) => (running(i.child) ? stopServer(i.child) : null)));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps each conversation on one instance, where its prefix cache is', async () => {
    const placed = new Map<string, string>();
    for (let c = 0; c < 8; c++) {
      const conversation = `conversation-${c}`;
      const messages = [{ role: 'user', content: `Tom had a red ball ${c}. One day` }];
      const served = new Set<string>();
      for (let turn = 0; turn < 3; turn++) {
        const reply = await chat(url, conversation, messages, true);
        assert.equal(reply.status, 200);
        served.add(reply.servedBy!);
        // The instance that ran the turn before holds the conversation's tokens: this turn starts from them.
        if (turn > 0) assert.ok(reply.cachedTokens > 0, `${conversation} turn ${turn}: no cached tokens`);
        messages.push({ role: 'assistant', content: reply.content }, { role: 'user', content: 'and then' });
      }
      assert.equal(served.size, 1, `${conversation} went to ${[...served].join(', ')}`);
      placed.set(conversation, [...served][0]!);
    }
    console.log(`      conversations per instance: ${[...placed.values()].sort().join(' ')}`);
    assert.ok(new Set(placed.values()).size > 1, 'the hash sent every conversation to one instance');
  });

  it('loses no request in a rolling restart under load', async () => {
    const load = startLoad(url);
    await sleep(1000);
    for (const name of NAMES) {
      const instance = instances.get(name)!;
      const code = await stopServer(instance.child);
      assert.equal(code, 0, `${name} did not drain cleanly:\n${instance.output()}`);
      await startInstance(name, instance.port);
      await waitForStatus(name, 'UP');
    }
    await sleep(500);
    const outcomes = await load.stop();
    const { retries, redispatches } = await stats();
    console.log(`      rolling restart: ${tally(outcomes)}; HAProxy retries ${retries}, redispatches ${redispatches}`);
    const failed = outcomes.filter((o) => o.status !== 200);
    assert.deepEqual(failed, [], `requests lost in the rolling restart; haproxy said:\n${haproxyOutput}`);
    assert.ok(outcomes.length > 20, 'the load barely ran');
  });

  it('loses only the requests a killed instance held, and replays the idempotent ones', async () => {
    const before = await stats();
    const load = startLoad(url);
    await sleep(1500);
    const victim = instances.get('n2')!;
    victim.child.kill('SIGKILL');
    await waitForStatus('n2', 'DOWN');
    await sleep(1000);
    const outcomes = await load.stop();
    const after = await stats();
    const lost = outcomes.filter((o) => o.status !== 200);
    const lostIdempotent = lost.filter((o) => o.idempotent);
    console.log(
      `      kill -9 of n2: ${tally(outcomes)}; lost ${lost.length} (idempotent ${lostIdempotent.length}); ` +
        `HAProxy retries ${after.retries - before.retries}, redispatches ${after.redispatches - before.redispatches}`,
    );
    // An idempotent request the crash cut short was replayed on another instance.
    assert.deepEqual(lostIdempotent, []);
    // The others are lost only when the killed instance held them: one per load loop at most. HAProxy answers them 502
    // or closes the client's connection (it cannot know whether the instance ran them).
    assert.ok(lost.length <= WORKERS, `lost ${lost.length} of ${WORKERS} loops' requests`);
    for (const o of lost) assert.ok(o.status === 502 || /other side closed/.test(o.error ?? ''), JSON.stringify(o));
    assert.ok(outcomes.length > 20, 'the load barely ran');
    await startInstance('n2', victim.port);
    await waitForStatus('n2', 'UP');
  });
});
