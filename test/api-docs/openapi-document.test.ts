import { strict as assert } from 'node:assert';
import { join } from 'node:path';
import { KSERVE_INFER_SCHEMA } from '@nucleus/plugin-api-kserve';
import { ExtensionPoints } from '@nucleus/sdk';
import { startTestKernel, type TestKernel } from '@nucleus/sdk/testing';
import { Validator } from '@seriousme/openapi-schema-validator';
import { REPO_ROOT } from '../helpers/paths.js';
import { sendRaw } from '../helpers/raw-http.js';

const ADMIN = 'admin-key-0123456789';
const USER = 'user-key-0123456789';
const plugin = (id: string) => join(REPO_ROOT, 'plugins', id);

interface Operation {
  summary: string;
  security: Array<Record<string, string[]>>;
  requestBody?: { content: Record<string, { schema?: Record<string, unknown> }> };
  parameters?: Array<{ name: string; in: string }>;
  'x-nucleus-access': string;
}
interface Document {
  openapi: string;
  servers: Array<{ url: string }>;
  paths: Record<string, Record<string, Operation>>;
}

const keys = { env: { NUCLEUS_ADMIN_KEY: ADMIN }, config: { 'auth.keys': [{ key: USER, role: 'user', name: 'u' }] } };

describe('API document (/openapi.json)', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({
      plugins: ['api-docs', 'api-kserve', 'api-openai', 'model-lifecycle'].map(plugin),
      ...keys,
    });
  });
  after(() => kit?.stop());

  const document = async (headers: Record<string, string> = {}): Promise<Document> => {
    const res = await kit.request('/openapi.json', { headers });
    assert.equal(res.status, 200);
    return res.body as Document;
  };
  const admin = { authorization: `Bearer ${ADMIN}` };

  it('is a valid OpenAPI 3.1 document by the specification’s own schema', async () => {
    const doc = await document();
    assert.equal(doc.openapi, '3.1.0');
    const result = await new Validator().validate(doc as never);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2)?.slice(0, 2000));
  });

  it('lists every route the server answers, with its access and the key it needs', async () => {
    const doc = await document();
    for (const { value, pluginId } of kit.kernel.extensions.point(ExtensionPoints.routes).list()) {
      const path = value.path.replace(/:(\w+)/g, '{$1}');
      assert.ok(doc.paths[path]?.[value.method.toLowerCase()], `${pluginId}: ${value.method} ${value.path} is listed`);
    }
    const op = (path: string, method: string) => {
      const found = doc.paths[path]?.[method];
      assert.ok(found, `${method.toUpperCase()} ${path} is listed`);
      return found;
    };
    assert.deepEqual(op('/health', 'get').security, []);
    assert.equal(op('/health', 'get')['x-nucleus-access'], 'public');
    assert.deepEqual(op('/v1/models', 'get').security, [{ apiKey: [] }]);
    assert.equal(op('/v1/models', 'get')['x-nucleus-access'], 'user');
    assert.equal(op('/admin/plugins/{id}/disable', 'post')['x-nucleus-access'], 'admin');
    assert.match(op('/admin/plugins/{id}/disable', 'post').summary, /deactivate/);
    assert.deepEqual(
      op('/v2/models/{model}/versions/{version}/infer', 'post').parameters?.map((p) => `${p.in}:${p.name}`),
      ['path:model', 'path:version'],
    );
    // A route without a doc of its own still shows up with its method and path.
    assert.equal(op('/v2/repository/index', 'post').summary, 'POST /v2/repository/index');
    const doc2 = await document();
    assert.ok(doc2.paths['/docs/{file}']?.get, 'the explorer lists itself');
  });

  it('carries the request schemas the routes validate with', async () => {
    const doc = await document();
    const body = (path: string) => {
      const schema = doc.paths[path]?.post?.requestBody?.content['application/json']?.schema;
      assert.ok(schema, `POST ${path} has a body schema`);
      return schema as { required?: string[]; properties: Record<string, unknown> };
    };
    assert.deepEqual(body('/v2/models/{model}/infer'), JSON.parse(JSON.stringify(KSERVE_INFER_SCHEMA)));
    assert.deepEqual(body('/v1/chat/completions').required, ['model', 'messages']);
    assert.ok(body('/v1/embeddings').properties.input);
    assert.deepEqual(body('/generate').required, ['prompt'], 'model is optional on the native route');
    assert.ok(body('/infer').properties.inputs);
    assert.ok(body('/admin/models').properties.name);
    // A real request the schema allows is taken by the route (the document says what the route accepts).
    const infer = await kit.request('/infer', {
      body: { model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } },
      headers: { authorization: `Bearer ${USER}` },
    });
    assert.equal(infer.status, 200, JSON.stringify(infer.body));
  });

  it('points "try it" at the host the client reached', async () => {
    // fetch() will not send a Host header of its own choosing: write the request by hand.
    const port = Number(new URL(kit.url).port);
    const head = `GET /openapi.json HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`;
    const answer = await sendRaw(port, { head }, 10_000);
    assert.equal(answer.kind, 'answer');
    if (answer.kind !== 'answer') return;
    const doc = JSON.parse(answer.body.toString()) as Document;
    assert.deepEqual(
      doc.servers.map((s) => s.url),
      [`http://localhost:${port}`],
    );
  });

  it('follows plugins as they are disabled, enabled and reloaded', async () => {
    const post = (path: string) => kit.request(path, { method: 'POST', headers: admin });
    assert.ok((await document()).paths['/v1/chat/completions']);
    assert.equal((await post('/admin/plugins/api-openai/disable')).status, 200);
    try {
      const without = await document();
      assert.equal(without.paths['/v1/chat/completions'], undefined);
      assert.equal(without.paths['/v1/embeddings'], undefined);
      assert.ok(without.paths['/v2/models/{model}/infer'], 'other plugins stay');
    } finally {
      assert.equal((await post('/admin/plugins/api-openai/enable')).status, 200);
    }
    assert.ok((await document()).paths['/v1/chat/completions']);
    assert.equal((await post('/admin/plugins/api-kserve/reload')).status, 200);
    assert.ok((await document()).paths['/v2/models/{model}/infer'], 'a reloaded plugin is listed again');
    // The explorer itself reloads and starts from the current routes.
    assert.equal((await post('/admin/plugins/api-docs/reload')).status, 200);
    assert.ok((await document()).paths['/v1/chat/completions']);
  });
});

describe('API explorer files (/docs)', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({ plugins: [plugin('api-docs')], builtinModels: false, ...keys });
  });
  after(() => kit?.stop());

  it('serves the page and the viewer from the server itself, typed, cached and gzipped', async () => {
    const page = await kit.request('/docs');
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /^text\/html/);
    const html = page.body as string;
    assert.match(html, /src="\/docs\/swagger-ui-bundle\.js"/);
    assert.doesNotMatch(html, /https?:\/\//, 'no file from elsewhere');
    const bundle = await fetch(new URL('/docs/swagger-ui-bundle.js', kit.url), {
      headers: { 'accept-encoding': 'gzip' },
    });
    assert.equal(bundle.status, 200);
    assert.match(bundle.headers.get('content-type')!, /^text\/javascript/);
    assert.equal(bundle.headers.get('content-encoding'), 'gzip');
    assert.match(bundle.headers.get('cache-control')!, /max-age=86400/);
    assert.match(await bundle.text(), /SwaggerUIBundle/);
    const again = await fetch(new URL('/docs/swagger-ui-bundle.js', kit.url), {
      // fetch() itself adds `cache-control: no-cache` to a conditional request, which a server must not answer 304.
      headers: { 'if-none-match': bundle.headers.get('etag')!, 'cache-control': 'max-age=0' },
    });
    assert.equal(again.status, 304);
    const css = await kit.request('/docs/swagger-ui.css');
    assert.match(css.headers.get('content-type')!, /^text\/css/);
  });

  it('answers a file it does not serve with a 404 that lists those it does', async () => {
    for (const name of ['swagger-ui-bundle.js.map', 'package.json', '..%2Fpackage.json']) {
      const res = await kit.request(`/docs/${name}`);
      assert.equal(res.status, 404, name);
      const error = (res.body as { error: { code: string; message: string } }).error;
      assert.equal(error.code, 'asset_not_found');
      assert.match(error.message, /swagger-ui-bundle\.js/);
    }
  });
});

describe('API document behind a key (plugin.api-docs.public: false)', function () {
  this.timeout(120_000);
  let kit: TestKernel;
  before(async () => {
    kit = await startTestKernel({
      plugins: [plugin('api-docs')],
      builtinModels: false,
      env: keys.env,
      config: { ...keys.config, 'plugin.api-docs.public': false },
    });
  });
  after(() => kit?.stop());

  it('needs a key for the document, not for the page that asks for one', async () => {
    const refused = await kit.request('/openapi.json');
    assert.equal(refused.status, 401);
    assert.equal((await kit.request('/openapi.json', { headers: { authorization: `Bearer ${USER}` } })).status, 200);
    assert.equal((await kit.request('/docs')).status, 200);
  });
});
