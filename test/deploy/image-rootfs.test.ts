import { strict as assert } from 'node:assert';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../helpers/paths.js';
import { followServer } from '../helpers/server-child.js';

interface ImageConfig {
  User: string;
  WorkingDir: string;
  Entrypoint: string[];
  Cmd: string[];
  Env: string[];
  ExposedPorts: Record<string, object>;
  Volumes: Record<string, object>;
  StopSignal: string;
  Healthcheck: { Test: string[] };
}

const CONTAINER = join(REPO_ROOT, 'deploy/container');
const OUT = join(REPO_ROOT, '.cache/image');
const ROOTFS = join(OUT, 'rootfs');

/** Why the image cannot be built and run here, or null when it can. */
function missing(): string | null {
  if (process.platform !== 'linux') return 'the root filesystem image is built on Linux only';
  if (process.getuid?.() !== 0) return 'building and running the image needs root (mounts, namespaces, chroot)';
  for (const tool of ['tini-static', 'unshare', 'chroot', 'ldd'])
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed (apt-get install tini)`;
  return null;
}

/** The Dockerfile's runtime stage, as instructions (continuation lines joined). */
function dockerfileRuntime(): Map<string, string[]> {
  const text = readFileSync(join(CONTAINER, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ');
  const stages = text.split(/^FROM /m);
  const runtime = stages[stages.length - 1]!;
  const out = new Map<string, string[]>();
  for (const line of runtime.split('\n')) {
    const m = /^([A-Z]+)\s+(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!.trim()]);
  }
  return out;
}

/** The host PID of the process the namespace's PID 1 is (tini), from the launcher's child list. */
// A process's command line. Read while the kernel is busy with the process (it was seen once on a loaded machine)
// the file can come back empty: read it again for up to 2 s before taking that as the answer.
async function commandLine(pid: number): Promise<string> {
  let line = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  for (let i = 0; i < 20 && line === ''; i++) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    line = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  }
  return line;
}

function pidOne(launcher: number): number {
  const children = readFileSync(`/proc/${launcher}/task/${launcher}/children`, 'utf8').trim().split(/\s+/);
  return Number(children[0]);
}

describe('container image as a root filesystem (build-rootfs.sh)', function () {
  this.timeout(300_000);
  let config: ImageConfig;

  before(function () {
    const why = missing();
    if (why) {
      console.log(`      skipped: ${why}`);
      this.skip();
    }
    const build = spawnSync(join(CONTAINER, 'build-rootfs.sh'), [OUT], { encoding: 'utf8', timeout: 240_000 });
    assert.equal(build.status, 0, `${build.stdout}\n${build.stderr}`);
    console.log(`      ${build.stdout.trim().split('\n').pop()}`);
    config = JSON.parse(readFileSync(join(OUT, 'config.json'), 'utf8')) as ImageConfig;
  });

  it('declares the same user, entrypoint, environment, volumes and health check as the Dockerfile', () => {
    const docker = dockerfileRuntime();
    assert.deepEqual(docker.get('USER'), [config.User]);
    assert.deepEqual(docker.get('WORKDIR'), [config.WorkingDir]);
    assert.deepEqual(JSON.parse(docker.get('ENTRYPOINT')![0]!), config.Entrypoint);
    assert.deepEqual(JSON.parse(docker.get('CMD')![0]!), config.Cmd);
    assert.deepEqual(docker.get('EXPOSE'), Object.keys(config.ExposedPorts));
    assert.deepEqual(JSON.parse(docker.get('VOLUME')![0]!), Object.keys(config.Volumes));
    assert.deepEqual(docker.get('STOPSIGNAL'), [config.StopSignal]);
    const env = docker.get('ENV')![0]!.split(/\s+/);
    assert.deepEqual(
      env,
      config.Env.filter((e) => !e.startsWith('PATH=')),
    );
    const health = docker.get('HEALTHCHECK')![0]!;
    assert.deepEqual(JSON.parse(health.slice(health.indexOf('CMD ') + 4)), config.Healthcheck.Test.slice(1));
    assert.match(config.Healthcheck.Test.join(' '), /\/livez/);
    assert.equal(config.Entrypoint[0], '/usr/bin/tini');
    assert.match(config.User, /^[1-9]\d*:\d+$/, 'a numeric non-root user');
  });

  it('holds Node, tini, the built app and its production dependencies, and nothing for development', () => {
    for (const file of ['usr/local/bin/node', 'usr/bin/tini', 'opt/nucleus/core/dist/cli/main.js'])
      assert.ok(statSync(join(ROOTFS, file)).isFile(), file);
    assert.ok(statSync(join(ROOTFS, 'usr/local/bin/node')).mode & 0o111);
    const modules = join(ROOTFS, 'opt/nucleus/node_modules');
    for (const dep of ['koa', 'ws', 'ajv', 'prom-client', 'onnxruntime-node'])
      assert.ok(existsSync(join(modules, dep)), dep);
    for (const dev of ['mocha', 'typescript', '@biomejs', 'node-llama-cpp', '@huggingface/transformers'])
      assert.ok(!existsSync(join(modules, dev)), `${dev} is a development dependency`);
    const ort = join(modules, 'onnxruntime-node/bin/napi-v6');
    assert.deepEqual(readdirSync(ort), ['linux']);
    assert.deepEqual(readdirSync(join(ort, 'linux')), [process.arch]);
    const uid = config.User.split(':')[0];
    assert.match(readFileSync(join(ROOTFS, 'etc/passwd'), 'utf8'), new RegExp(`^nucleus:x:${uid}:`, 'm'));
    for (const dir of ['var/cache/nucleus', 'var/cache/huggingface'])
      assert.equal(String(statSync(join(ROOTFS, dir)).uid), uid, `${dir} belongs to the user`);
    const plugins = readdirSync(join(ROOTFS, 'opt/nucleus/plugins'));
    assert.deepEqual(plugins.sort(), readdirSync(join(REPO_ROOT, 'plugins')).sort());
  });

  it('runs read-only as the image user under tini: /livez, an inference, then SIGTERM drains and exits 0', async () => {
    const cache = join(OUT, 'volumes');
    const child: ChildProcess = spawn(join(CONTAINER, 'run-rootfs.sh'), [OUT, cache], {
      env: { PATH: process.env.PATH ?? '', NUCLEUS_SERVER_HOST: '127.0.0.1', NUCLEUS_SERVER_PORT: '0' },
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const server = followServer(child, 120_000);
    // PID 1 of the container: killing it ends everything in its PID namespace, whatever the test got to.
    let tini: number | undefined;
    let exitedCleanly = false;
    try {
      const url = await server.url;
      assert.equal((await fetch(`${url}/livez`)).status, 200);
      assert.equal((await fetch(`${url}/readyz`)).status, 200);

      tini = pidOne(child.pid!);
      assert.match(await commandLine(tini), /^\/usr\/bin\/tini\0/);
      const node = Number(readFileSync(`/proc/${tini}/task/${tini}/children`, 'utf8').trim());
      const uid = config.User.split(':')[0];
      assert.match(readFileSync(`/proc/${node}/status`, 'utf8'), new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
      const rootMount = readFileSync(`/proc/${node}/mountinfo`, 'utf8')
        .split('\n')
        .map((l) => l.split(' '))
        .find((f) => f[4] === '/');
      assert.match(rootMount![5]!, /(^|,)ro(,|$)/, 'the root filesystem is mounted read-only');

      const infer = await fetch(`${url}/v2/models/mlp-classifier/infer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }],
        }),
      });
      assert.equal(infer.status, 200, await infer.clone().text());
      const result = (await infer.json()) as { outputs: { name: string; data: number[] }[] };
      const probabilities = result.outputs.find((o) => o.name === 'probabilities')!.data;
      assert.ok(Math.abs(probabilities.reduce((a, b) => a + b, 0) - 1) < 1e-4);

      // A streamed generation in flight when SIGTERM reaches PID 1 runs to its end; the process then exits 0.
      const stream = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'stories260K',
          messages: [{ role: 'user', content: 'Once upon a time' }],
          max_tokens: 200,
          temperature: 0,
          stream: true,
          ignore_eos: true,
        }),
      });
      assert.equal(stream.status, 200);
      const reader = stream.body!.getReader();
      let text = '';
      const first = await reader.read();
      text += new TextDecoder().decode(first.value);
      process.kill(tini, 'SIGTERM');
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      assert.match(text, /"finish_reason":"(length|stop)"/);
      assert.match(text, /data: \[DONE\]/);
      assert.equal(await exited, 0, server.output());
      exitedCleanly = true;
    } finally {
      child.kill('SIGKILL');
      // The user switch inside drops the parent-death signal: the launcher's end alone would leave it running.
      if (tini && !exitedCleanly) killQuietly(tini);
    }
  });
});

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone, as after a clean run.
  }
}
