import { strict as assert } from 'node:assert';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import WebSocket from 'ws';
import { findKey } from '@nucleus/core/internal/server/auth';
import { pluginDir, until } from '../observability/helpers.js';

const ADMIN = 'admin-key-tenants-0123456789';
const ALICE = 'alice-key-tenants-0123456789';
const BOB = 'bob-key-tenants-012345678901';

const SYSTEM =
  'You are a helpful storyteller. Tell short, kind stories about animals in the forest, with a happy ending and simple words.';

interface Message {
  type: string;
  topic?: string;
  event?: string;
  data?: { path?: string; value?: unknown; previous?: unknown; tenant?: string; status?: number };
}

async function listen(url: string, key: string, topics: string[]): Promise<{ ws: WebSocket; got: Message[] }> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/ws?token=${encodeURIComponent(key)}`);
  const got: Message[] = [];
  ws.on('message', (raw) => got.push(JSON.parse(raw.toString())));
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.send(JSON.stringify({ type: 'subscribe', topics }));
  await until(() => got.some((m) => m.type === 'subscribed'), 'the subscription');
  return { ws, got };
}

describe('tenant isolation between API keys', () => {
  let kit: TestKernel;
  const auth = (key: string) => ({ authorization: `Bearer ${key}` });
  before(async () => {
    kit = await startTestKernel({
      plugins: ['api-openai', 'cache-lru'].map(pluginDir),
      env: { NUCLEUS_ADMIN_KEY: ADMIN },
      config: {
        'cache.prefix.maxBytes': 8 * 1024 * 1024,
        'auth.keys': [
          { key: ALICE, role: 'user', name: 'alice' },
          { key: BOB, role: 'user', name: 'bob' },
        ],
      },
    });
  });
  after(async () => {
    await kit.stop();
  });

  const chat = async (key: string, question: string, conversation?: string) => {
    const res = await kit.request('/v1/chat/completions', {
      headers: auth(key),
      body: {
        model: 'tiny-llama',
        messages: [
          { role: 'system', content: SYSTEM },
          { role: 'user', content: question },
        ],
        max_tokens: 4,
        temperature: 0,
        ...(conversation && { conversation_id: conversation }),
      },
    });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    return (res.body as { usage: { prompt_tokens_details: { cached_tokens: number } } }).usage.prompt_tokens_details
      .cached_tokens;
  };

  it("a user key cannot release, or learn of, another key's conversation", async () => {
    await chat(ALICE, 'Who lives in the old oak?', 'talk-1');
    const bob = await kit.request('/conversations/talk-1', { method: 'DELETE', headers: auth(BOB) });
    assert.equal(bob.status, 404);
    assert.equal((bob.body as { error: { code: string } }).error.code, 'conversation_not_found');
    assert.ok(!JSON.stringify(bob.body).includes('released_bytes'), 'no byte count');
    const unknown = await kit.request('/conversations/never-was', { method: 'DELETE', headers: auth(BOB) });
    assert.deepEqual(
      Object.keys(unknown.body as object),
      Object.keys(bob.body as object),
      'the same answer as a conversation nobody has',
    );
    const alice = await kit.request('/conversations/talk-1', { method: 'DELETE', headers: auth(ALICE) });
    assert.equal(alice.status, 200);
    assert.ok((alice.body as { released_bytes: number }).released_bytes > 0, 'her own conversation is released');
    const again = await kit.request('/conversations/talk-1', { method: 'DELETE', headers: auth(ALICE) });
    assert.equal(again.status, 404, 'once released it is gone');
  });

  it("keeps each user key's prefix cache apart unless cache.prefix.shareAcrossKeys", async () => {
    await chat(ALICE, 'What does the fox eat?');
    assert.ok((await chat(ALICE, 'Where does the owl sleep?')) >= 32, "alice reuses her own prompt's start");
    assert.equal(await chat(BOB, 'What does the fox eat?'), 0, "bob's cached_tokens says nothing of alice's text");
    const patch = await kit.request('/admin/config', {
      method: 'PATCH',
      headers: auth(ADMIN),
      body: { 'cache.prefix.shareAcrossKeys': true },
    });
    assert.equal(patch.status, 200, JSON.stringify(patch.body));
    try {
      await chat(ALICE, 'Why is the river cold?');
      assert.ok((await chat(BOB, 'Why is the river cold?')) >= 32, 'shared: bob reuses what alice left');
    } finally {
      await kit.request('/admin/config', {
        method: 'PATCH',
        headers: auth(ADMIN),
        body: { 'cache.prefix.shareAcrossKeys': false },
      });
    }
  });

  it('shows a user key on /ws its own requests only, and config changes without values; admins see all', async () => {
    const alice = await listen(kit.url, ALICE, ['requests', 'config']);
    const bob = await listen(kit.url, BOB, ['requests']);
    const admin = await listen(kit.url, ADMIN, ['requests', 'config']);
    try {
      await kit.request('/v1/models/alice-private-model', { headers: auth(ALICE) });
      await kit.request('/v1/models/bob-private-model', { headers: auth(BOB) });
      await kit.request('/v1/models/nobody-model');
      const patch = await kit.request('/admin/config', {
        method: 'PATCH',
        headers: auth(ADMIN),
        body: { 'cache.prefix.maxBytes': 4 * 1024 * 1024 },
      });
      assert.equal(patch.status, 200);
      const paths = (got: Message[]) => got.filter((m) => m.event === 'request.end').map((m) => m.data!.path ?? '');
      await until(
        () =>
          ['alice-private', 'bob-private', 'nobody', 'admin/config'].every((p) =>
            paths(admin.got).some((x) => x.includes(p)),
          ),
        'the admin socket to see every request',
      );
      await until(() => alice.got.some((m) => m.event === 'config.changed'), "the config change on alice's socket");
      await until(() => paths(bob.got).some((p) => p.includes('bob-private')), "bob's own request");

      assert.ok(
        paths(alice.got).some((p) => p.includes('alice-private')),
        'alice sees her request',
      );
      const leaked = [...alice.got, ...bob.got].filter((m) => m.topic === 'requests');
      assert.ok(!paths(alice.got).some((p) => /bob-private|nobody|admin/.test(p)), 'alice sees no one else');
      assert.ok(!paths(bob.got).some((p) => /alice-private|nobody|admin/.test(p)), 'bob sees no one else');
      assert.ok(leaked.every((m) => m.event === 'request.start' || m.event === 'request.end'));

      const change = alice.got.find((m) => m.event === 'config.changed')!;
      assert.deepEqual(change.data, { path: 'cache.prefix.maxBytes' }, 'the path, not the values');
      const seen = admin.got.find((m) => m.event === 'config.changed')!;
      assert.equal(seen.data!.value, 4 * 1024 * 1024, 'the admin sees the value');
    } finally {
      for (const s of [alice, bob, admin]) s.ws.close();
    }
  });

  it('checks /ws keys as the HTTP routes do: a wrong key of the same length is refused', async () => {
    const wrong = ALICE.replace(/.$/, 'x');
    assert.equal(wrong.length, ALICE.length);
    const status = await new Promise<number>((resolve) =>
      new WebSocket(`${kit.url.replace('http', 'ws')}/ws?token=${wrong}`)
        .once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
        .once('open', () => resolve(101)),
    );
    assert.equal(status, 401);
  });
});

describe('findKey', () => {
  const keys = [
    { key: ALICE, role: 'user' as const, name: 'alice' },
    { key: ADMIN, role: 'admin' as const },
  ];
  it('finds the key a token is and nothing for a prefix, an extension or another key', () => {
    assert.equal(findKey(keys, ALICE)?.name, 'alice');
    assert.equal(findKey(keys, ADMIN)?.role, 'admin');
    for (const token of [ALICE.slice(0, -1), `${ALICE}0`, '', undefined, BOB])
      assert.equal(findKey(keys, token), undefined);
  });
});
