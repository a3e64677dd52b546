import { strict as assert } from 'node:assert';
import { type RequestBatch, RequestFeed } from '@nucleus/plugin-dashboard';

const end = (n: number, tenant?: string) => ({
  requestId: `r${n}`,
  ...(tenant !== undefined && { tenant }),
  method: 'POST',
  path: '/v2/models/m/infer',
  route: '/v2/models/:name/infer',
  status: 200,
  durationMs: 1.5,
});

describe('dashboard: the recent-requests feed', () => {
  let feed: RequestFeed | undefined;
  afterEach(() => feed?.dispose());

  it('sends a thousand requests as one bounded batch per tenant, newest kept, oldest first', () => {
    const batches: RequestBatch[] = [];
    feed = new RequestFeed({ intervalMs: 60_000, max: 100, emit: (b) => batches.push(b) });
    for (let i = 0; i < 1000; i++) feed.add(end(i, i % 2 ? 'acme' : undefined));
    feed.add(end(1000, 'globex'));
    assert.equal(batches.length, 0, 'nothing leaves before the interval');
    feed.flush();
    assert.equal(batches.length, 3);
    const acme = batches.find((b) => b.tenant === 'acme')!;
    assert.equal(acme.requests.length, 100);
    assert.equal(acme.requests.at(-1)!.requestId, 'r999', 'the newest is last');
    assert.equal(acme.requests[0]!.requestId, 'r801', 'past the bound the oldest are left out');
    assert.deepEqual(
      acme.requestIds,
      acme.requests.map((r) => r.requestId),
    );
    const none = batches.find((b) => !('tenant' in b))!;
    assert.ok(
      none.requests.every((r) => Number(r.requestId.slice(1)) % 2 === 0),
      'requests without a tenant apart',
    );
    assert.deepEqual(
      batches.find((b) => b.tenant === 'globex')!.requests.map((r) => r.requestId),
      ['r1000'],
    );
    feed.flush();
    assert.equal(batches.length, 3, 'an empty flush sends nothing');
  });

  it('sends by itself after the interval, and carries a prompt only for the request it was given for', async () => {
    const batches: RequestBatch[] = [];
    feed = new RequestFeed({ intervalMs: 20, max: 10, emit: (b) => batches.push(b) });
    feed.prompt('r1', 'Once upon a time');
    feed.add(end(1));
    feed.add(end(2));
    for (let i = 0; i < 200 && batches.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(batches.length, 1);
    const [first, second] = batches[0]!.requests;
    assert.equal(first!.prompt, 'Once upon a time');
    assert.equal(second!.prompt, undefined);
    assert.equal(first!.route, '/v2/models/:name/infer');
    assert.equal(typeof first!.at, 'number');
  });
});
