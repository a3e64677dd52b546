import { strict as assert } from 'node:assert';
import type { Server } from 'node:net';
import { Worker } from 'node:worker_threads';
import type { BurstOptions, BurstOutcome } from '../helpers/burst-clients.js';
import { startWhoamiServer } from '../helpers/secure-server.js';

describe('shutdown under a burst of connections', () => {
  it('answers every request sent while stop() runs (200, or 503 with Connection: close), or refuses the connection', async function () {
    this.timeout(120_000);
    const { server, stop } = await startWhoamiServer({ 'server.shutdownTimeoutMs': 10_000 });
    const listener = (server.http as unknown as { server: Server }).server;
    // The client ports of the connections the server took, to tell a reset of one of them from one still queued.
    const accepted = new Set<number>();
    listener.on('connection', (socket) => accepted.add(socket.remotePort ?? 0));
    const options: BurstOptions = {
      port: Number(new URL(server.url).port),
      fresh: 150,
      keepAlive: 50,
      rounds: 400,
      signalAfter: 400,
      burst: 400,
      // Longer than any fixed linger: the listener must stay open while connections keep coming.
      hammerMs: 1500,
    };
    const clients = new Worker(new URL('../helpers/burst-clients.js', import.meta.url), { workerData: options });
    let stopping: Promise<void> | undefined;
    let outcomes: BurstOutcome[];
    try {
      outcomes = await new Promise<BurstOutcome[]>((resolve, reject) => {
        clients.on('error', reject);
        clients.on('message', (m: { answered?: number; outcomes?: BurstOutcome[] }) => {
          if (m.answered) stopping ??= stop();
          if (m.outcomes) resolve(m.outcomes);
        });
      });
    } finally {
      await clients.terminate();
      stopping ??= stop();
      await stopping;
    }
    const count = (what: (o: BurstOutcome) => boolean) => outcomes.filter(what).length;
    const lost = outcomes.filter((o): o is Extract<BurstOutcome, { kind: 'lost' }> => o.kind === 'lost');
    const summary = {
      ok: count((o) => o.kind === 'answered' && o.status === 200),
      unavailable: count((o) => o.kind === 'answered' && o.status === 503),
      refused: count((o) => o.kind === 'refused'),
      lostOnAcceptedConnections: lost.filter((o) => o.localPort !== undefined && accepted.has(o.localPort)).length,
      lostInTheAcceptQueue: lost.filter((o) => o.localPort === undefined || !accepted.has(o.localPort)).length,
      lostCodes: [...new Set(lost.map((o) => `${o.code} after ${o.answeredBefore} answers`))],
    };
    assert.ok(summary.unavailable > 0 && summary.refused > 0, `stop() ran under the burst: ${JSON.stringify(summary)}`);
    assert.equal(lost.length, 0, `requests lost without an answer: ${JSON.stringify(summary)}`);
    for (const o of outcomes)
      if (o.kind === 'answered') {
        assert.ok(o.status === 200 || o.status === 503, `status ${o.status}`);
        if (o.status === 503) assert.ok(o.close, 'a 503 closes its connection');
      }
  });
});
