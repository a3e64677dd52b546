import { strict as assert } from 'node:assert';
import type { CatalogRoute } from '@nucleus/sdk';
import { openApiDocument } from '@nucleus/plugin-api-docs';

const info = { title: 't', version: '1.0.0' };

describe('openApiDocument', () => {
  it('turns `:param` segments into path parameters and gives each operation its own id', () => {
    const routes: CatalogRoute[] = [
      { method: 'GET', path: '/v2/models/:model/versions/:version', access: 'user', plugin: 'p' },
      { method: 'GET', path: '/v2/models/:model/versions/:version', access: 'public', plugin: 'q' },
      { method: 'POST', path: '/v2-models', access: 'admin', plugin: 'p' },
      { method: 'POST', path: '/v2/models', access: 'admin', plugin: 'p' },
    ];
    const doc = openApiDocument(routes, info);
    const op = doc.paths['/v2/models/{model}/versions/{version}']!.get!;
    assert.deepEqual(
      op.parameters?.map((p) => [p.name, p.in, p.required]),
      [
        ['model', 'path', true],
        ['version', 'path', true],
      ],
    );
    assert.equal(op['x-nucleus-plugin'], 'p', 'the first contribution answers, so it is the one listed');
    assert.equal(op.operationId, 'getV2ModelsByModelVersionsByVersion');
    const ids = [doc.paths['/v2-models']!.post!.operationId, doc.paths['/v2/models']!.post!.operationId];
    assert.equal(new Set(ids).size, 2, `ids clash: ${ids}`);
  });

  it('copies schemas, so changing the document cannot change what a route validates with', () => {
    const body = { type: 'object', properties: { a: { type: 'string' } } };
    const doc = openApiDocument([{ method: 'POST', path: '/x', access: 'user', plugin: 'p', doc: { body } }], info);
    const listed = (doc.paths['/x']!.post!.requestBody as { content: { 'application/json': { schema: object } } })
      .content['application/json'].schema;
    assert.deepEqual(listed, body);
    assert.notEqual(listed, body);
  });
});
