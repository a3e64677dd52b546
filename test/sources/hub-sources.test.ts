import { strict as assert } from 'node:assert';
import { existsSync, lstatSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { TestKernel } from '@nucleus/sdk/testing';
import { startTestKernel } from '@nucleus/sdk/testing';
import { HubServer, hubFile, sha256, type HubRepo } from '../helpers/hub-server.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { ORACLE_DIR, requireOracle } from '../llm-formats/llm-module.js';

// The source-hub plugin against a Hub-shaped server on 127.0.0.1, through the kernel's model resolution as a load
// or a configured model uses it: the Hugging Face cache layout, the Hub's hashes, resuming, locking, offline use.

const TOKEN = 'hf_test_token_0123456789';
const oracle = (stem: string) => join(ORACLE_DIR, `${stem}.gguf`);

function repos(): HubRepo[] {
  return [
    { name: 'org/tiny', files: [hubFile('tiny-Q4_0.gguf', oracle('quant-zoo-Q4_0'))], refs: ['v1'] },
    {
      name: 'org/zoo',
      files: [hubFile('zoo-Q8_0.gguf', oracle('quant-zoo-Q8_0')), hubFile('zoo-Q5_0.gguf', oracle('quant-zoo-Q5_0'))],
    },
    { name: 'org/cut', files: [hubFile('cut.gguf', oracle('quant-zoo-Q6_K'))] },
    { name: 'org/bad', files: [hubFile('bad.gguf', oracle('quant-zoo-Q4_1'))] },
    { name: 'org/page', files: [hubFile('page.gguf', oracle('quant-zoo-Q5_1'))] },
    { name: 'org/twice', files: [hubFile('twice.gguf', oracle('quant-zoo-Q3_K_M'))] },
    { name: 'acme/private', token: TOKEN, files: [hubFile('p.gguf', oracle('quant-zoo-Q2_K'))] },
    {
      name: 'org/checkpoint',
      files: [
        { path: 'config.json', data: Buffer.from('{"architectures":["LlamaForCausalLM"]}') },
        { path: 'tokenizer.json', data: Buffer.from('{"model":{"type":"BPE"}}') },
        { path: 'README.md', data: Buffer.from('# a model card, not needed to load it') },
        { path: 'model.safetensors', data: Buffer.alloc(4096, 7), lfs: true },
      ],
    },
  ];
}

describe('source-hub: hf:// sources through a Hub-shaped server', function () {
  this.timeout(120_000);
  let hub: HubServer;
  let endpoint: string;
  let cache: string;
  const kits: TestKernel[] = [];

  const start = async (env: Record<string, string> = {}): Promise<TestKernel> => {
    const kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'source-hub')],
      builtinModels: false,
      env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache, ...env },
    });
    kits.push(kit);
    return kit;
  };
  const resolve = (kit: TestKernel, source: string, sha256?: string) =>
    kit.kernel.formats.resolve(source, sha256 === undefined ? {} : { sha256 });
  const rejection = async (p: Promise<unknown>): Promise<{ code: string; status: number; message: string }> => {
    try {
      await p;
    } catch (err) {
      return err as { code: string; status: number; message: string };
    }
    assert.fail('expected it to fail');
  };

  before(async function () {
    requireOracle(this);
    hub = new HubServer(repos());
    endpoint = await hub.start();
    cache = tempDir('hub-cache');
  });
  after(async () => {
    for (const kit of kits) await kit.stop();
    await hub?.stop();
    if (cache) rmSync(cache, { recursive: true, force: true });
  });

  it('downloads a GGUF cold into the Hugging Face cache layout, then loads it again with no request at all', async () => {
    const kit = await start();
    const resolved = await resolve(kit, 'hf://org/tiny/tiny-Q4_0.gguf');
    const commit = hub.commit('org/tiny');
    const folder = join(cache, 'models--org--tiny');
    const data = readFileSync(oracle('quant-zoo-Q4_0'));
    assert.equal(resolved.source.path, join(folder, 'snapshots', commit, 'tiny-Q4_0.gguf'));
    assert.equal(resolved.source.source, 'hf://org/tiny/tiny-Q4_0.gguf');
    assert.equal(resolved.format?.name, 'gguf');
    assert.ok(lstatSync(resolved.source.path).isSymbolicLink());
    assert.equal(readlinkSync(resolved.source.path), `../../blobs/${sha256(data)}`);
    assert.ok(readFileSync(join(folder, 'blobs', sha256(data))).equals(data));
    assert.equal(readFileSync(join(folder, 'refs', 'main'), 'utf8'), commit);
    assert.deepEqual(
      readdirSync(join(folder, 'blobs')).filter((f) => f.endsWith('.incomplete')),
      [],
      'no partial file is left behind',
    );
    assert.equal(hub.downloads.get('org/tiny/tiny-Q4_0.gguf'), 1);

    // A server started later on the same cache asks the Hub nothing.
    const before = hub.requests.length;
    const warm = await start();
    assert.equal((await resolve(warm, 'hf://org/tiny/tiny-Q4_0.gguf')).source.path, resolved.source.path);
    assert.equal(hub.requests.length, before, JSON.stringify(hub.requests.slice(before)));
  });

  it('resumes a download whose connection was cut mid-file with a Range request, and the file is intact', async () => {
    const kit = await start();
    const data = readFileSync(oracle('quant-zoo-Q6_K'));
    hub.fault('org/cut/cut.gguf', { kind: 'cut', afterBytes: 300_000 });
    const first = await rejection(resolve(kit, 'hf://org/cut/cut.gguf'));
    assert.equal(first.code, 'model_source_interrupted', first.message);
    assert.match(first.message, /resumes where it stopped/);
    const partial = join(cache, 'models--org--cut', 'blobs', `${sha256(data)}.incomplete`);
    assert.ok(existsSync(partial), 'the partial download is kept');
    assert.ok(lstatSync(partial).size >= 300_000 && lstatSync(partial).size < data.length);

    const resolved = await resolve(kit, 'hf://org/cut/cut.gguf');
    // The Range goes with the request and follows the redirect to the file's storage.
    const ranged = hub.requests.filter((r) => r.path.startsWith('/cdn/') && r.path.endsWith('/cut.gguf') && r.range);
    assert.equal(ranged.length, 1);
    assert.match(ranged[0]!.range!, /^bytes=\d+-$/);
    assert.ok(Number(/=(\d+)-/.exec(ranged[0]!.range!)![1]) >= 300_000);
    assert.ok(readFileSync(resolved.source.path).equals(data));
    assert.ok(!existsSync(partial));
  });

  it('refuses a download whose bytes do not match the Hub sha256, keeps nothing, and takes the good file next time', async () => {
    const kit = await start();
    hub.fault('org/bad/bad.gguf', { kind: 'corrupt' });
    const err = await rejection(resolve(kit, 'hf://org/bad/bad.gguf'));
    assert.deepEqual([err.status, err.code], [400, 'model_sha256_mismatch']);
    assert.match(err.message, /refusing to use it/);
    const blobs = join(cache, 'models--org--bad', 'blobs');
    assert.deepEqual(
      readdirSync(blobs).filter((f) => !f.endsWith('.lock')),
      [],
    );
    const ok = await resolve(kit, 'hf://org/bad/bad.gguf');
    assert.ok(readFileSync(ok.source.path).equals(readFileSync(oracle('quant-zoo-Q4_1'))));
  });

  it('honours a sha256 pin: the right one loads, a wrong one is refused before anything is downloaded', async () => {
    const kit = await start();
    const data = readFileSync(oracle('quant-zoo-Q8_0'));
    const wrong = await rejection(resolve(kit, 'hf://org/zoo/zoo-Q8_0.gguf', '0'.repeat(64)));
    assert.deepEqual([wrong.status, wrong.code], [400, 'model_sha256_mismatch']);
    assert.equal(hub.downloads.get('org/zoo/zoo-Q8_0.gguf'), undefined);
    const ok = await resolve(kit, 'hf://org/zoo/zoo-Q8_0.gguf', sha256(data));
    assert.ok(readFileSync(ok.source.path).equals(data));
    // A pin on a cached file is checked too.
    const cachedWrong = await rejection(resolve(await start(), 'hf://org/zoo/zoo-Q8_0.gguf', 'f'.repeat(64)));
    assert.equal(cachedWrong.code, 'model_sha256_mismatch');
  });

  it('names the files when a repository holds several GGUFs and none is named', async () => {
    const kit = await start();
    const err = await rejection(resolve(kit, 'hf://org/zoo'));
    assert.deepEqual([err.status, err.code], [400, 'ambiguous_model_source']);
    assert.match(err.message, /zoo-Q8_0\.gguf/);
    assert.match(err.message, /zoo-Q5_0\.gguf/);
  });

  it('fetches a whole checkpoint repository as its config, tokenizer and weights only, each checked', async () => {
    const kit = await start();
    // Whichever format claims the folder (the safetensors one, where installed) is not this test's concern.
    await resolve(kit, 'hf://org/checkpoint').catch(() => undefined);
    const snapshot = join(cache, 'models--org--checkpoint', 'snapshots', hub.commit('org/checkpoint'));
    assert.deepEqual(readdirSync(snapshot).sort(), ['config.json', 'model.safetensors', 'tokenizer.json']);
    assert.equal(readFileSync(join(snapshot, 'config.json'), 'utf8'), '{"architectures":["LlamaForCausalLM"]}');
  });

  it('downloads a file once when two loads in one server ask for it at the same time', async () => {
    const kit = await start();
    const [a, b] = await Promise.all([
      resolve(kit, 'hf://org/twice/twice.gguf'),
      resolve(kit, 'hf://org/twice@main/twice.gguf'),
    ]);
    assert.equal(a.source.path, b.source.path);
    assert.equal(hub.downloads.get('org/twice/twice.gguf'), 1);
  });

  it('serves from the cache offline, and says to run nucleus pull when the file is not there', async () => {
    const offline = await start({ HF_HUB_OFFLINE: '1' });
    const before = hub.requests.length;
    const hit = await resolve(offline, 'hf://org/tiny/tiny-Q4_0.gguf');
    assert.ok(readFileSync(hit.source.path).equals(readFileSync(oracle('quant-zoo-Q4_0'))));
    const miss = await rejection(resolve(offline, 'hf://org/zoo/zoo-Q5_0.gguf'));
    assert.deepEqual([miss.status, miss.code], [503, 'model_source_offline']);
    assert.match(miss.message, /not in the cache .* offline/);
    assert.match(miss.message, /nucleus pull hf:\/\/org\/zoo\/zoo-Q5_0\.gguf/);
    assert.equal(hub.requests.length, before, 'offline asks the network nothing');
  });

  it('uses the cache when the Hub cannot be reached, and fails clearly for a file it does not hold', async () => {
    const down = await start({ HF_ENDPOINT: 'http://127.0.0.1:9' });
    const hit = await resolve(down, 'hf://org/tiny@v1/tiny-Q4_0.gguf').catch((e: Error) => e);
    // `v1` was never fetched: no ref for it in the cache, and the Hub is down.
    assert.equal((hit as { code?: string }).code, 'model_source_offline');
    assert.match((hit as Error).message, /cannot be reached/);
    const cached = await resolve(down, 'hf://org/tiny/tiny-Q4_0.gguf');
    assert.ok(existsSync(cached.source.path));
  });

  it('reads a private repository with HF_TOKEN, and without it says to set one', async () => {
    const anonymous = await start();
    const err = await rejection(resolve(anonymous, 'hf://acme/private/p.gguf'));
    assert.deepEqual([err.status, err.code], [400, 'model_source_unauthorized']);
    assert.match(err.message, /HF_TOKEN/);
    const withToken = await start({ HF_TOKEN: TOKEN });
    const ok = await resolve(withToken, 'hf://acme/private/p.gguf');
    assert.ok(readFileSync(ok.source.path).equals(readFileSync(oracle('quant-zoo-Q2_K'))));
    assert.ok(hub.requests.some((r) => r.authorization === `Bearer ${TOKEN}`));
  });

  it('fetches one file by URL (http to this machine), checks its pin, and refuses an HTML page', async () => {
    const kit = await start();
    const data = readFileSync(oracle('quant-zoo-Q5_0'));
    const url = `${endpoint}/cdn/org/zoo/${sha256(data)}/zoo-Q5_0.gguf`;
    const resolved = await resolve(kit, url, sha256(data));
    assert.equal(resolved.format?.name, 'gguf');
    assert.ok(resolved.source.path.startsWith(join(cache, 'urls')));
    assert.ok(readFileSync(resolved.source.path).equals(data));
    const pinned = await rejection(resolve(await start(), url, '1'.repeat(64)));
    assert.equal(pinned.code, 'model_sha256_mismatch');
    hub.fault('org/page/page.gguf', { kind: 'html' });
    const page = readFileSync(oracle('quant-zoo-Q5_1'));
    const html = await rejection(resolve(kit, `${endpoint}/cdn/org/page/${sha256(page)}/page.gguf`));
    assert.deepEqual([html.status, html.code], [400, 'model_source_not_a_file']);
  });

  it('refuses what the allow-lists leave out, and plain http to another machine', async () => {
    const kit = await startTestKernel({
      plugins: [join(REPO_ROOT, 'plugins', 'source-hub')],
      builtinModels: false,
      env: { HF_ENDPOINT: endpoint, HF_HUB_CACHE: cache },
      config: { 'plugin.source-hub.allowOrgs': ['trusted'] },
    });
    kits.push(kit);
    const org = await rejection(resolve(kit, 'hf://org/tiny/tiny-Q4_0.gguf'));
    assert.deepEqual([org.status, org.code], [403, 'model_source_not_allowed']);
    assert.match(org.message, /allowOrgs/);
    const http = await rejection(resolve(kit, 'http://example.com/model.gguf'));
    assert.deepEqual([http.status, http.code], [400, 'insecure_model_source']);
  });
});
