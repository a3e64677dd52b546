import type { CatalogRoute, JsonSchemaObject, RouteDoc } from '@nucleus/sdk';

/** What the document says of itself and where its operations are served. */
export interface DocumentInfo {
  title: string;
  version: string;
  description?: string;
}

/** An OpenAPI 3.1 document (only the parts this builder writes are typed). */
export interface OpenApiDocument {
  openapi: '3.1.0';
  info: DocumentInfo;
  servers?: Array<{ url: string; description?: string }>;
  tags: Array<{ name: string; description?: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: Record<string, unknown>;
}

interface Operation {
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  parameters?: Array<Record<string, unknown>>;
  requestBody?: Record<string, unknown>;
  responses: Record<string, unknown>;
  security: Array<Record<string, string[]>>;
  'x-nucleus-access': CatalogRoute['access'];
  'x-nucleus-plugin': string;
}

/** The name of the security scheme every keyed operation lists. */
export const BEARER = 'apiKey';

const ERROR_SCHEMA = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['message', 'type', 'code'],
      properties: {
        message: { type: 'string', description: 'what went wrong and what to change' },
        type: { type: 'string', examples: ['invalid_request_error', 'authentication_error', 'server_error'] },
        code: { type: 'string', examples: ['invalid_body', 'model_not_found'] },
        param: { type: ['string', 'null'], description: 'the field at fault, where one is' },
      },
    },
  },
};

const ACCESS_NOTE: Record<CatalogRoute['access'], string> = {
  public: 'Access: public (no key).',
  user: 'Access: user — any configured key (user or admin); open when no keys are configured.',
  admin: 'Access: admin — an admin key.',
};

// `:name` and `*name` segments (the router's syntax) become OpenAPI's `{name}`.
const PARAM = /[:*]([A-Za-z_][A-Za-z0-9_]*)/g;

/**
 * Builds the OpenAPI 3.1 document of the routes served now. Schemas are copied, so the document handed out never
 * aliases the objects the routes validate with. A method and path contributed twice is listed once, as the server
 * answers it: the first one.
 */
export function openApiDocument(routes: readonly CatalogRoute[], info: DocumentInfo): OpenApiDocument {
  const paths: OpenApiDocument['paths'] = {};
  const tags = new Map<string, string | undefined>();
  const operationIds = new Set<string>();
  for (const route of routes) {
    const path = route.path.replace(PARAM, '{$1}');
    const method = route.method.toLowerCase();
    const item = (paths[path] ??= {});
    if (item[method]) continue;
    const operation = operationOf(route, route.doc ?? {}, uniqueId(route, operationIds));
    for (const tag of operation.tags)
      if (!tags.has(tag)) tags.set(tag, route.doc?.tags ? undefined : `routes of the ${route.plugin} plugin`);
    item[method] = operation;
  }
  return {
    openapi: '3.1.0',
    info,
    tags: [...tags].map(([name, description]) => ({ name, ...(description && { description }) })),
    paths,
    components: {
      securitySchemes: {
        [BEARER]: {
          type: 'http',
          scheme: 'bearer',
          description:
            'An API key from `auth.keys` (or NUCLEUS_ADMIN_KEY), sent as `Authorization: Bearer <key>`. Admin operations need an admin key.',
        },
      },
      schemas: { Error: ERROR_SCHEMA },
      responses: {
        Error: {
          description: 'An error: 4xx for a request to change, 5xx for the server',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
        },
      },
    },
  };
}

function operationOf(route: CatalogRoute, doc: RouteDoc, operationId: string): Operation {
  const parameters = [
    ...[...route.path.matchAll(PARAM)].map(([, name]) => ({
      name: name!,
      in: 'path',
      required: true,
      schema: { type: 'string' },
      ...(doc.params?.[name!] && { description: doc.params[name!] }),
    })),
    ...Object.entries(doc.query ?? {}).map(([name, q]) => ({
      name,
      in: 'query',
      required: q.required ?? false,
      schema: copy(q.schema),
      ...(q.description && { description: q.description }),
    })),
  ];
  const description = [doc.description, ACCESS_NOTE[route.access]].filter(Boolean).join('\n\n');
  return {
    operationId,
    summary: doc.summary ?? `${route.method} ${route.path}`,
    description,
    tags: doc.tags ?? [route.plugin],
    ...(parameters.length > 0 && { parameters }),
    ...(doc.body && {
      requestBody: {
        required: true,
        content: Object.fromEntries(
          ['application/json', ...(doc.bodyContentTypes ?? [])].map((type) => [
            type,
            type === 'application/json' ? { schema: copy(doc.body!) } : {},
          ]),
        ),
      },
    }),
    responses: {
      ...Object.fromEntries(
        Object.entries(doc.responses ?? { 200: { description: 'OK' } }).map(([status, r]) => [
          status,
          {
            description: r.description,
            ...(r.schema && { content: { [r.contentType ?? 'application/json']: { schema: copy(r.schema) } } }),
          },
        ]),
      ),
      default: { $ref: '#/components/responses/Error' },
    },
    // An empty requirement list overrides nothing here (there is no top-level `security`): it says "no key".
    security: route.access === 'public' ? [] : [{ [BEARER]: [] }],
    'x-nucleus-access': route.access,
    'x-nucleus-plugin': route.plugin,
  };
}

// `getV2ModelsByModelInfer`: readable in the viewer's deep links, made unique with a counter where two clash.
function uniqueId(route: CatalogRoute, taken: Set<string>): string {
  const words = route.path
    .split('/')
    .filter(Boolean)
    .map((segment) => {
      const param = /^[:*](.+)$/.exec(segment)?.[1];
      const word = (param ? `by_${param}` : segment).replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) =>
        (c ?? '').toUpperCase(),
      );
      return word.charAt(0).toUpperCase() + word.slice(1);
    });
  const base = `${route.method.toLowerCase()}${words.join('') || 'Root'}`;
  let id = base;
  for (let n = 2; taken.has(id); n++) id = `${base}${n}`;
  taken.add(id);
  return id;
}

function copy(schema: JsonSchemaObject): JsonSchemaObject {
  return structuredClone(schema);
}
