import { strict as assert } from 'node:assert';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { API_KSERVE } from '../api-kserve/kserve-fixtures.js';
import { scaleModel, writeVersion } from '../engine/engine-fixtures.js';
import { REPO_ROOT, tempDir } from '../helpers/paths.js';
import { WsClient } from '../helpers/ws-client.js';

const TRAFFIC = join(REPO_ROOT, 'plugins/traffic-policy');
const ADMIN_KEY = 'ws-traffic-admin-key-0123456789';

interface WsResult {
  type: string;
  version: string;
  outputs: { y: number[][] };
}

describe('traffic policies over /ws: WebSocket infer goes through the routers as /infer does', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  let dir: string;

  before(async () => {
    dir = tempDir('ws-traffic');
    writeVersion(`${dir}/models`, 'scale', '1', scaleModel(1));
    writeVersion(`${dir}/models`, 'scale', '2', scaleModel(2));
    kit = await startTestKernel({
      plugins: [API_KSERVE, TRAFFIC],
      env: { NUCLEUS_ADMIN_KEY: ADMIN_KEY },
      builtinModels: false,
      config: {
        modelRepository: `${dir}/models`,
        'plugin.traffic-policy.policies': {
          scale: {
            type: 'weights',
            variants: [
              { version: '1', weight: 50 },
              { version: '2', weight: 50 },
            ],
          },
        },
      },
    });
  });
  after(async () => {
    await kit?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends each user (x-user-id on the upgrade) to the version /infer gives it, and says which answered', async () => {
    const versions = new Set<string>();
    for (let i = 0; i < 12; i++) {
      const user = `user-${i}`;
      const http = await kit.request('/infer', {
        body: { model: 'scale', inputs: { x: [[1, 2, 3, 4]] } },
        headers: { authorization: `Bearer ${ADMIN_KEY}`, 'x-user-id': user },
      });
      assert.equal(http.status, 200, JSON.stringify(http.body));
      const expected = (http.body as { version: string }).version;
      const c = await WsClient.open(kit.url, { authorization: `Bearer ${ADMIN_KEY}`, 'x-user-id': user });
      try {
        for (const id of [1, 2]) {
          const answer = (await c.request({
            type: 'infer',
            id,
            model: 'scale',
            inputs: { x: [[1, 2, 3, 4]] },
          })) as unknown as WsResult;
          assert.equal(answer.type, 'result', JSON.stringify(answer));
          assert.equal(answer.version, expected, `${user} over /ws`);
          // Each version answers with its own factor: the label is the version that ran.
          assert.deepEqual(
            answer.outputs.y[0],
            [1, 2, 3, 4].map((x) => x * Number(expected)),
          );
        }
      } finally {
        c.ws.terminate();
      }
      versions.add(expected);
    }
    assert.deepEqual([...versions].sort(), ['1', '2'], 'both versions answered someone');
  });
});
