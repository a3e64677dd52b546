const MiB = 1024 * 1024;

/** The `server` section of the config (see `CORE_CONFIG_SCHEMA`): the HTTP front, its limits, timeouts and TLS. */
export const SERVER_SCHEMA = {
  type: 'object',
  description: 'The HTTP server.',
  default: {},
  additionalProperties: false,
  properties: {
    host: {
      type: 'string',
      minLength: 1,
      description: 'Address to listen on; 0.0.0.0 exposes the server to the network.',
      default: '127.0.0.1',
    },
    port: {
      type: 'integer',
      minimum: 0,
      maximum: 65535,
      description: 'TCP port to listen on; 0 picks a free port.',
      default: 8080,
    },
    processes: {
      type: ['integer', 'string'],
      minimum: 1,
      maximum: 1024,
      pattern: '^auto$',
      description:
        "HTTP front processes serving `server.port` together (node:cluster; the kernel hands each connection to one of them), each with its own plugins and model workers, so memory grows with each; `auto` starts one per core this process may use. Above 1, admin operations that change a process's state (model load, swap and unload, plugin enable, disable and reload, `PATCH /admin/config`) are refused with 409 `multi_process_admin`, since they would reach one process only: change the config and restart instead. /metrics sums the processes' metrics; log lines carry each process's `pid`; SIGTERM drains them all.",
      default: 1,
    },
    bodyLimitBytes: {
      type: 'integer',
      minimum: 1,
      description: 'Largest request body accepted; larger ones get 413.',
      default: 10 * MiB,
    },
    offloadJsonBytes: {
      type: 'integer',
      minimum: 0,
      description:
        'JSON bodies larger than this (by Content-Length) are parsed on a worker thread, keeping the event loop free; KServe v2 tensor data comes back as typed arrays. 0 parses every body on the main thread.',
      default: 256 * 1024,
    },
    jsonMaxDepth: {
      type: 'integer',
      minimum: 1,
      maximum: 10_000,
      description:
        'Deepest nesting of objects and arrays a JSON body (or KServe v2 inference header) may have; deeper ones get 400 `json_too_deep` before anything walks them.',
      default: 64,
      'x-runtime': true,
    },
    defaultModel: {
      type: 'string',
      description:
        'The LLM that native generation requests (`/generate`, `/chat`, `/infer` with a prompt) go to when they name no `model`; empty: the one LLM served, if there is exactly one (otherwise such a request gets 400 naming the models).',
      default: '',
      'x-runtime': true,
    },
    headersTimeoutMs: {
      type: 'integer',
      minimum: 1,
      description:
        'How long a client may take to send a request line and headers; past it the server answers 408 and closes the connection. Capped at `server.requestTimeoutMs`.',
      default: 20_000,
    },
    requestTimeoutMs: {
      type: 'integer',
      minimum: 0,
      description:
        'How long a client may take to send a whole request, headers and body; past it the server answers 408 and closes the connection (the time the answer takes is not counted). 0 never times out.',
      default: 60_000,
    },
    bodyIdleTimeoutMs: {
      type: 'integer',
      minimum: 0,
      description:
        'How long a request body may pause between two chunks; past it the server answers 408 and closes the connection. 0 waits as long as `server.requestTimeoutMs`.',
      default: 15_000,
    },
    maxConnections: {
      type: 'integer',
      minimum: 0,
      description:
        'Most TCP connections open at once (HTTP, HTTPS and WebSocket together); a connection past it is closed as soon as it is accepted. 0 means no cap.',
      default: 4096,
    },
    tls: {
      type: 'object',
      description:
        'HTTPS (and WSS): set `cert` and `key` to serve TLS 1.2 or later on `server.port` instead of plain HTTP. The files are watched and reloaded when they change, without a restart.',
      default: {},
      additionalProperties: false,
      properties: {
        cert: {
          type: ['string', 'null'],
          minLength: 1,
          description: 'PEM file of the server certificate (with its intermediates); null serves plain HTTP.',
          default: null,
          'x-path': true,
        },
        key: {
          type: ['string', 'null'],
          minLength: 1,
          description: "PEM file of the certificate's private key; needed with `cert`.",
          default: null,
          'x-path': true,
        },
        ca: {
          type: ['string', 'null'],
          minLength: 1,
          description:
            'PEM file of the certificate authorities that sign client certificates; needed when `clientAuth` is not `none`.',
          default: null,
          'x-path': true,
        },
        clientAuth: {
          type: 'string',
          enum: ['none', 'optional', 'require'],
          description:
            'Client certificates (mutual TLS): `none` asks for none; `optional` asks, and a certificate signed by `ca` whose CN is listed in `auth.clientCertificates` authenticates its request; `require` refuses the TLS handshake of a client without a certificate signed by `ca`.',
          default: 'none',
        },
      },
    },
    drainDelayMs: {
      type: 'integer',
      minimum: 0,
      description:
        'On SIGTERM or SIGINT, how long the server keeps its listener and connections open, answering /ready 503 and new requests 503 with `Connection: close`, before it closes them (within `shutdownTimeoutMs`): set it to the time a load balancer takes to mark an instance down (health-check interval × failures), so that it stops sending before a kept-alive connection closes under a request. Kubernetes does the same with a preStop sleep.',
      default: 0,
    },
    shutdownTimeoutMs: {
      type: 'integer',
      minimum: 0,
      description:
        'On SIGTERM or SIGINT, how long requests in flight may take to finish before their connections are closed. Until then the server keeps listening and answers new requests 503 (with Retry-After); /ready reports stopping.',
      default: 30_000,
    },
  },
} as const;

/** The `ws` section of the config: limits of the `/ws` event hub. */
export const WS_SCHEMA = {
  type: 'object',
  description:
    'The WebSocket hub on `/ws`: how many sockets it takes, and how far a socket that reads slowly may fall behind.',
  default: {},
  additionalProperties: false,
  properties: {
    maxConnections: {
      type: 'integer',
      minimum: 1,
      description: 'Most sockets open at once; an upgrade past it is refused with 429 (and Retry-After).',
      default: 1000,
      'x-runtime': true,
    },
    maxConnectionsPerKey: {
      type: 'integer',
      minimum: 1,
      description:
        'Most sockets one API key may have open at once; an upgrade past it is refused with 429. Applies while keys are configured.',
      default: 16,
      'x-runtime': true,
    },
    maxBufferedBytes: {
      type: 'integer',
      minimum: 1024,
      description:
        "Bytes a socket may have waiting to be sent: while more wait (the client reads too slowly), messages for it are dropped, counted and logged instead of piling up in the server's memory.",
      default: 1024 * 1024,
      'x-runtime': true,
    },
    maxDroppedMessages: {
      type: 'integer',
      minimum: 1,
      description:
        'Messages dropped in a row for one slow socket before it is closed with code 1013 (try again later) and a reason saying so.',
      default: 1000,
      'x-runtime': true,
    },
  },
} as const;
