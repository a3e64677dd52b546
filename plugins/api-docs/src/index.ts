import {
  definePlugin,
  ExtensionPoints,
  optionalService,
  ServiceRefs,
  type PluginContext,
  type RouteContribution,
} from '@nucleus/sdk';
import { type OpenApiDocument, openApiDocument } from './openapi-document.js';
import { ViewerAssets } from './viewer-assets.js';

export { BEARER, type DocumentInfo, type OpenApiDocument, openApiDocument } from './openapi-document.js';

/** The api-docs plugin's config section (`plugin.api-docs`), as its schema in package.json defines it. */
export interface ApiDocsConfig {
  public: boolean;
  title: string;
}

/**
 * The API explorer: `GET /openapi.json`, an OpenAPI 3.1 document of every route served now (built from the route
 * catalog, so a plugin enabled, disabled or reloaded shows at once), and `GET /docs`, Swagger UI on that document with
 * "Try it out" against this server.
 */
export default definePlugin({
  // Optional: a kernel run without an HTTP server (`nucleus quantize`, library use) has no catalog, and no requests.
  deps: { routes: optionalService(ServiceRefs.routes) },
  activate(ctx: PluginContext<ApiDocsConfig>, { routes }) {
    const access = ctx.config.public ? 'public' : 'user';
    // Built on first request after a change, not at each change: a reload changes routes one contribution at a time.
    let document: OpenApiDocument | undefined;
    if (routes) ctx.onDispose(routes.onChange(() => (document = undefined)));
    const assets = new ViewerAssets();
    const own: RouteContribution[] = [
      {
        method: 'GET',
        path: '/openapi.json',
        access,
        doc: {
          summary: 'This OpenAPI 3.1 document: every route served now',
          responses: { 200: { description: 'the document', schema: { type: 'object', required: ['openapi'] } } },
        },
        handler: (http) => {
          document ??= openApiDocument(routes?.list() ?? [], {
            title: ctx.config.title,
            version: ctx.version,
            description: `Every route of every active plugin, generated from the schemas the routes validate with. Try it in the explorer at /docs.`,
          });
          http.set('cache-control', 'no-cache');
          // "Try it out" goes to the host the document was fetched from, as the client reached it.
          return { ...document, servers: [{ url: `${http.protocol}://${http.host}`, description: 'this server' }] };
        },
      },
      {
        method: 'GET',
        path: '/docs',
        access: 'public',
        doc: {
          summary: 'The API explorer (Swagger UI)',
          responses: { 200: { description: 'page', contentType: 'text/html' } },
        },
        handler: (http) => assets.serve(http, 'index.html'),
      },
      {
        method: 'GET',
        path: '/docs/:file',
        access: 'public',
        doc: {
          summary: "The explorer's scripts and stylesheets, served from this server",
          params: { file: 'swagger-ui-bundle.js, swagger-ui.css, explorer.js …' },
        },
        handler: (http) => assets.serve(http, http.params.file!),
      },
    ];
    for (const route of own)
      ctx.contribute(ExtensionPoints.routes, route, { name: `api-docs/${route.method} ${route.path}` });
  },
});
