/** The `auth` section of the config (see `CORE_CONFIG_SCHEMA`): API keys, client certificates and signed tokens. */
export const AUTH_SCHEMA = {
  type: 'object',
  description: 'API keys. With no keys configured every route is open.',
  default: {},
  additionalProperties: false,
  properties: {
    keys: {
      type: 'array',
      description:
        'API keys clients send as `Authorization: Bearer <key>`; `admin` keys may also call the admin API. ' +
        'Changeable at run time as a whole list (`PATCH /admin/config {"auth.keys": [...]}`): the next request ' +
        'is checked against the new list, sockets already open keep the key they came with.',
      default: [],
      'x-runtime': true,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['key', 'role'],
        properties: {
          key: {
            type: 'string',
            minLength: 1,
            description: 'The secret itself; use a long random string.',
            'x-secret': true,
          },
          role: { type: 'string', enum: ['admin', 'user'], description: 'What the key may call.' },
          name: { type: 'string', description: 'A label for logs and metrics, so the key itself is never logged.' },
          limits: {
            type: 'object',
            additionalProperties: false,
            description:
              "This key's own rate limits, enforced by the rate-limit plugin; a field left out takes " +
              '`plugin.rate-limit.default`, null lifts that limit for this key.',
            properties: {
              requestsPerMinute: {
                type: ['integer', 'null'],
                minimum: 1,
                description: 'Requests per minute (a token bucket: bursts up to this many, refilled evenly).',
              },
              tokensPerMinute: {
                type: ['integer', 'null'],
                minimum: 1,
                description:
                  'LLM prompt plus generated tokens per minute, charged when a generation ends; requests are ' +
                  'refused while the bucket is empty.',
              },
              concurrentStreams: {
                type: ['integer', 'null'],
                minimum: 1,
                description: 'Streamed (`"stream": true`) requests open at once.',
              },
            },
          },
        },
      },
    },
    clientCertificates: {
      type: 'array',
      description:
        'Client certificates that stand for a key (with `server.tls.clientAuth`): a request over a connection ' +
        'whose certificate is signed by `server.tls.ca` and has this common name (CN) gets this role, as if it ' +
        'sent a key. A bearer key or token sent as well takes precedence.',
      default: [],
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['commonName', 'role'],
        properties: {
          commonName: { type: 'string', minLength: 1, description: "The certificate subject's CN." },
          role: { type: 'string', enum: ['admin', 'user'], description: 'What the certificate may call.' },
          name: { type: 'string', description: 'A label for logs and metrics; the CN by default.' },
        },
      },
    },
    jwt: {
      type: 'object',
      description:
        'Signed tokens (JWT) from an OpenID Connect provider, accepted as `Authorization: Bearer <token>` beside ' +
        'API keys. Set `issuer`, `audience` and `jwksUrl` to turn it on.',
      default: {},
      additionalProperties: false,
      properties: {
        issuer: {
          type: ['string', 'null'],
          minLength: 1,
          description: "The `iss` a token must carry (the provider's issuer URL); null turns signed tokens off.",
          default: null,
        },
        audience: {
          type: ['string', 'null'],
          minLength: 1,
          description: 'The `aud` a token must carry (the client id the provider issues tokens for).',
          default: null,
        },
        jwksUrl: {
          type: ['string', 'null'],
          minLength: 1,
          description:
            "URL of the provider's JSON Web Key Set (`jwks_uri` in its `/.well-known/openid-configuration`).",
          default: null,
        },
        algorithms: {
          type: 'array',
          description: 'Signature algorithms accepted; `none` and HMAC never are.',
          default: ['RS256', 'PS256', 'ES256', 'EdDSA'],
          items: {
            type: 'string',
            enum: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'],
          },
        },
        roleClaim: {
          type: 'string',
          minLength: 1,
          description:
            "The claim holding the caller's roles (a string, space-separated, or an array); a dotted path " +
            'reaches into objects (`realm_access.roles`).',
          default: 'roles',
        },
        adminRoles: {
          type: 'array',
          description: 'A token whose role claim holds one of these is an admin caller.',
          default: ['admin'],
          items: { type: 'string', minLength: 1 },
        },
        userRoles: {
          type: 'array',
          description:
            'A token must hold one of these (or an admin role) to call user routes; empty lets every valid token ' +
            'in as a user.',
          default: [],
          items: { type: 'string', minLength: 1 },
        },
        nameClaim: {
          type: 'string',
          minLength: 1,
          description:
            'The claim that names the caller in logs, metrics and rate limits (`sub`, `preferred_username`, ' +
            '`azp` …); the tenant is always `iss` plus `sub`.',
          default: 'sub',
        },
        clockToleranceSeconds: {
          type: 'integer',
          minimum: 0,
          description: 'Clock skew allowed when checking `exp` and `nbf`.',
          default: 30,
        },
        jwksCacheMs: {
          type: 'integer',
          minimum: 1000,
          description: 'How long fetched keys are used before the key set is fetched again.',
          default: 600_000,
        },
        jwksCooldownMs: {
          type: 'integer',
          minimum: 0,
          description:
            'A token signed by a key not in the cached set fetches the set again (key rotation), at most once ' +
            'per this long.',
          default: 30_000,
        },
      },
    },
    adminKey: {
      type: ['string', 'null'],
      minLength: 1,
      description: 'A single admin key, handy for containers where a key list is awkward; null means none.',
      default: null,
      'x-secret': true,
      'x-env': 'NUCLEUS_ADMIN_KEY',
    },
  },
} as const;
