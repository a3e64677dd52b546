/** A JSON Schema (draft 2020-12, as OpenAPI 3.1 reads it): the same object a route validates with. */
export type JsonSchemaObject = Record<string, unknown>;

/** One query parameter a route reads. */
export interface QueryParameterDoc {
  schema: JsonSchemaObject;
  description?: string;
  required?: boolean;
}

/** One answer a route gives. */
export interface ResponseDoc {
  description: string;
  /** The body's schema, where it is worth stating. */
  schema?: JsonSchemaObject;
  /** Default `application/json`. */
  contentType?: string;
}

/**
 * What a route says about itself for the API document (`GET /openapi.json`). Every field is optional: a route without
 * one is still listed with its method, path and access.
 */
export interface RouteDoc {
  /** One line. */
  summary?: string;
  description?: string;
  /** Groups in the API explorer; default the contributing plugin's id. */
  tags?: string[];
  /** The request body's JSON Schema: pass the schema the handler validates with, not a copy. */
  body?: JsonSchemaObject;
  /** Media types the body may also come as (default only `application/json`). */
  bodyContentTypes?: string[];
  /** Query parameters by name. */
  query?: Record<string, QueryParameterDoc>;
  /** Path parameters' descriptions by name (`:name` segments are listed whether described or not). */
  params?: Record<string, string>;
  /** Answers by HTTP status (`'200'`, `'201'` …); errors share one shape and need not be listed. */
  responses?: Record<string, ResponseDoc>;
}

/** One route the server answers now, as the {@link RouteCatalog} lists it. */
export interface CatalogRoute {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  /** With `:param` segments, as contributed. */
  path: string;
  access: 'public' | 'user' | 'admin';
  /** The contributing plugin's id, or `kernel`. */
  plugin: string;
  doc?: RouteDoc;
}

/** The routes the server answers now: the kernel's and every active plugin's (`Services.routes`). */
export interface RouteCatalog {
  /** Every route, in the order the server matches them. */
  list(): readonly CatalogRoute[];
  /** Called whenever a plugin's routes come or go (enable, disable, reload); returns the function that unsubscribes. */
  onChange(listener: () => void): () => void;
}
