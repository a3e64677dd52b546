import { performance } from 'node:perf_hooks';
import { deflateSync, gzipSync } from 'node:zlib';
import { type RawAnswer, type RawRequest, sendRaw } from './raw-http.js';

/** A route as the server's route table lists it. */
export interface FuzzRoute {
  method: string;
  path: string;
}

/** What the fuzzer needs to know about the server it attacks. */
export interface FuzzTarget {
  port: number;
  routes: readonly FuzzRoute[];
  userKey: string;
  adminKey: string;
  /** Names that exist (models), used in paths of routes that only read or infer. */
  models: readonly string[];
}

/** How one fuzzed request was built and what it got. */
export interface FuzzOutcome {
  mutation: string;
  method: string;
  path: string;
  caller: string;
  /** The status, or `no answer` / `hang`. */
  result: string;
  /** Why this outcome breaks the rules; absent when it is fine. */
  failure?: string;
  /** From the first byte sent to the answer. */
  ms?: number;
}

/** A fuzzing run's counts. */
export interface FuzzReport {
  total: number;
  /** Count per status (or `no answer`, `hang`, `abandoned`). */
  statuses: Record<string, number>;
  /** Count per mutation kind. */
  mutations: Record<string, number>;
  failures: FuzzOutcome[];
  /** The five slowest answers. */
  slowest: FuzzOutcome[];
}

/** A small seeded generator (mulberry32), so a run is the same run every time. */
export class Random {
  constructor(private state: number) {}
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

const chat = (model: string) => ({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 });
const inferV2 = { inputs: [{ name: 'input', shape: [1, 4], datatype: 'FP32', data: [0.1, 0.2, 0.3, 0.4] }] };
const inferNative = { model: 'mlp-classifier', inputs: { input: [[0.1, 0.2, 0.3, 0.4]] } };

/** A body each route takes (or nearly), for the mutations to start from; the admin ones name nothing that exists. */
const SEEDS: Array<[RegExp, unknown]> = [
  [/chat\/completions$|^\/chat$/, chat('tiny-llama')],
  [/\/completions$|^\/generate$/, { model: 'tiny-llama', prompt: 'hi', max_tokens: 2, temperature: 0 }],
  [/embeddings$/, { model: 'bert-tiny', input: 'hi' }],
  [/\/infer$/, inferV2],
  [/^\/infer$/, inferNative],
  [/^\/(batch|stream)_infer$/, { requests: [inferNative, inferNative] }],
  [/\/generate(_stream)?$/, { text_input: 'hi', parameters: { max_tokens: 2, temperature: 0 } }],
  [/^\/admin\/models$/, { name: 'fuzz-model', source: 'fuzz/missing.gguf' }],
  [/\/swap$/, { source: 'fuzz/missing.onnx' }],
  [/^\/admin\/traffic\//, { type: 'weights', weights: [{ version: '1', weight: 100 }] }],
  [/^\/v2\/repository\/index$/, { ready: true }],
  [/^\/admin\/config$/, { 'fuzz.unknown': 1 }],
];

const TRAVERSALS = [
  '..%2F..%2F..%2Fetc%2Fpasswd',
  '%2e%2e',
  '..\\..\\windows',
  '%00',
  'a%00b',
  '%zz',
  '%E0%A4%A',
  '%C0%AF',
  '%F0%9F%98%80',
  'x'.repeat(4096),
  '__proto__',
  'constructor',
  '-1',
  '1e309',
];

const ODD_VALUES: unknown[] = [
  null,
  true,
  0,
  -1,
  1.5,
  -0,
  1e308,
  -1e308,
  2 ** 53 + 1,
  '',
  'x',
  'NaN',
  '\u0000',
  '\ud800',
  [],
  [null],
  {},
  { __proto__: null, polluted: true },
  { constructor: { prototype: { polluted: true } } },
  [[[[[[]]]]]],
  'x'.repeat(70_000),
];

type Caller = 'none' | 'user' | 'admin' | 'wrong' | 'garbage';

/**
 * Builds and sends mutated requests over every route of a server, and judges each answer: the server must answer
 * (no hang, no dropped connection), never with a 5xx other than 503 (and 501 for a method it does not know), and
 * every error must be a JSON body naming its `type` and `code`.
 */
export class RequestFuzzer {
  private readonly random: Random;

  constructor(
    private readonly target: FuzzTarget,
    seed: number,
  ) {
    this.random = new Random(seed);
  }

  /** Sends `count` requests, `concurrency` at a time, and counts what came back. */
  async run(count: number, concurrency: number, timeoutMs = 60_000): Promise<FuzzReport> {
    const report: FuzzReport = { total: 0, statuses: {}, mutations: {}, failures: [], slowest: [] };
    let sent = 0;
    const worker = async () => {
      while (sent < count) {
        sent++;
        // Built one at a time, in order, from the one seeded generator: the same requests every run, whatever order
        // the answers come in, and no more than `concurrency` large bodies held at once.
        const built = this.build();
        const started = performance.now();
        const answer = await sendRaw(this.target.port, built.raw, timeoutMs);
        const outcome = { ...judge(built, answer), ms: Math.round(performance.now() - started) };
        report.slowest = [...report.slowest, outcome].sort((a, b) => (b.ms ?? 0) - (a.ms ?? 0)).slice(0, 5);
        report.total++;
        report.statuses[outcome.result] = (report.statuses[outcome.result] ?? 0) + 1;
        report.mutations[built.mutation] = (report.mutations[built.mutation] ?? 0) + 1;
        if (outcome.failure) report.failures.push(outcome);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, worker));
    return report;
  }

  private build(): Built {
    const r = this.random;
    const route = r.pick(this.target.routes);
    const caller = r.pick<Caller>(['none', 'user', 'user', 'user', 'admin', 'admin', 'wrong', 'garbage']);
    // An admin key never reaches a real resource on a route that changes state: the fuzzer must not unload models.
    const mutating = route.method !== 'GET';
    const adminMutating = caller === 'admin' && mutating && /^\/(admin|v2\/repository)/.test(route.path);
    const path = route.path.replace(/:(\w+)/g, (_, name: string) => this.param(name, adminMutating));
    const seed = structuredClone(SEEDS.find(([re]) => re.test(route.path))?.[1] ?? {});
    const built: Built = {
      mutation: 'valid',
      method: route.method,
      path,
      caller,
      headers: [['host', '127.0.0.1'], ['connection', 'close'], ...authHeaders(caller, this.target)],
      body: mutating ? Buffer.from(JSON.stringify(seed)) : undefined,
      raw: { head: '' },
    };
    if (mutating) built.headers.push(['content-type', 'application/json']);
    const mutations = Object.keys(MUTATIONS) as Array<keyof typeof MUTATIONS>;
    const kind = r.next() < 0.05 ? undefined : r.pick(mutations);
    if (kind) {
      built.mutation = kind;
      MUTATIONS[kind](built, seed, r);
    }
    if (built.body && !built.headers.some(([k]) => k.toLowerCase() === 'content-length' || k === 'transfer-encoding'))
      built.headers.push(['content-length', String(built.body.length)]);
    if (!built.raw.head) {
      const head = `${built.method} ${built.path} HTTP/1.1\r\n${built.headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
      built.raw.head = Buffer.from(head, 'latin1');
    }
    built.raw.body ??= built.body;
    return built;
  }

  private param(name: string, adminMutating: boolean): string {
    const r = this.random;
    if (adminMutating || r.next() < 0.3) return r.next() < 0.5 ? `fuzz-${name}-${r.int(1000)}` : r.pick(TRAVERSALS);
    if (name === 'version') return r.pick(['1', '2', '0']);
    if (name === 'model' || name === 'name') return r.pick(this.target.models);
    return `fuzz-${r.int(1000)}`;
  }
}

interface Built {
  mutation: string;
  method: string;
  path: string;
  caller: Caller;
  headers: Array<[string, string]>;
  body: Buffer | undefined;
  raw: RawRequest;
  /** The client sends no complete request; a closed connection without an answer is fine. */
  abandoned?: boolean;
  /** A method the server does not implement: 501 is its right answer. */
  unknownMethod?: boolean;
}

function authHeaders(caller: Caller, target: FuzzTarget): Array<[string, string]> {
  switch (caller) {
    case 'none':
      return [];
    case 'user':
      return [['authorization', `Bearer ${target.userKey}`]];
    case 'admin':
      return [['authorization', `Bearer ${target.adminKey}`]];
    case 'wrong':
      return [['authorization', `Bearer ${target.userKey.slice(0, -1)}x`]];
    case 'garbage':
      return [['authorization', 'Basic Zm9vOmJhcg==, Bearer ']];
  }
}

/** A JSON value's paths (as key lists), the root included. */
function pathsOf(value: unknown, at: Array<string | number> = [], out: Array<Array<string | number>> = []) {
  out.push(at);
  if (value && typeof value === 'object')
    for (const [k, v] of Object.entries(value)) pathsOf(v, [...at, Array.isArray(value) ? Number(k) : k], out);
  return out;
}

/** Replaces the value at `path` (a fresh copy when `path` is the root). */
function setAt(root: unknown, path: Array<string | number>, value: unknown): unknown {
  if (path.length === 0) return value;
  let node = root as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string | number, unknown>;
  node[path.at(-1)!] = value;
  return root;
}

// Compressing 64 MiB takes a while (and holds the event loop): each bomb is made once.
const bombs = new Map<string, Buffer>();
const bomb = (key: string, make: () => Buffer) => bombs.get(key) ?? bombs.set(key, make()).get(key)!;
const spaces = (mib: number) => Buffer.alloc(mib * 1024 * 1024, 0x20);

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const nested = (depth: number, open: string, close: string, inner = '1') =>
  `${open.repeat(depth)}${inner}${close.repeat(depth)}`;

/** Each way a request is bent, by name; each changes `b` (and may use the seed body). */
const MUTATIONS: Record<string, (b: Built, seed: unknown, r: Random) => void> = {
  'wrong type': (b, seed, r) => {
    b.body = json(setAt(seed, r.pick(pathsOf(seed)), r.pick(ODD_VALUES)));
  },
  'dropped field': (b, seed, r) => {
    const paths = pathsOf(seed).filter((p) => p.length > 0);
    if (paths.length) {
      const path = r.pick(paths);
      const parent = path.slice(0, -1).reduce((n, k) => (n as Record<string | number, unknown>)[k], seed);
      if (Array.isArray(parent)) parent.splice(Number(path.at(-1)), 1);
      else delete (parent as Record<string, unknown>)[path.at(-1) as string];
    }
    b.body = json(seed);
  },
  'extra fields': (b, seed, r) => {
    const extra =
      r.next() < 0.5
        ? '"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},'
        : Array.from({ length: 5000 }, (_, i) => `"k${i}":${i},`).join('');
    const text = JSON.stringify(seed);
    b.body = Buffer.from(text.startsWith('{') && text.length > 2 ? `{${extra}${text.slice(1)}` : text);
  },
  'deep nesting': (b, seed, r) => {
    const depth = r.pick([63, 65, 1000, 100_000, 1_000_000]);
    const [open, close] = r.pick([
      ['[', ']'],
      ['{"a":', '}'],
    ]);
    const marker = '"__deep__"';
    const text = JSON.stringify(setAt(seed, r.pick(pathsOf(seed)), '__deep__'));
    b.body = Buffer.from(text.replace(marker, nested(depth, open!, close!)));
  },
  'huge array': (b, seed, r) => {
    const length = r.pick([100_000, 1_000_000, 3_000_000]);
    const item = r.pick(['0', '1.5', '"x"', 'null', '{}']);
    const text = JSON.stringify(setAt(seed, r.pick(pathsOf(seed)), '__huge__'));
    // `repeat` builds the same text as joining an array of `length` items, without the array.
    b.body = Buffer.from(text.replace('"__huge__"', () => `[${item}${`,${item}`.repeat(length - 1)}]`));
  },
  'invalid json': (b, seed, r) => {
    const text = JSON.stringify(seed);
    b.body = Buffer.from(
      r.pick([
        text.slice(0, r.int(text.length)),
        `${text},`,
        `${text}}`,
        text.replace(/"/g, "'"),
        text.replace(/:/, ':NaN,"x":'),
        `\ufeff${text}`,
        '',
        'null',
        '"just a string"',
        '12345678901234567890e99999',
        '[]',
        '{"a":1,"a":2}',
        `{${'"x":1,'.repeat(3)}}`,
      ]),
    );
  },
  'bad utf-8': (b, seed, r) => {
    const text = Buffer.from(JSON.stringify(setAt(seed, r.pick(pathsOf(seed)), '__bytes__')));
    const bad = r.pick([
      Buffer.from([0xff, 0xfe]),
      Buffer.from([0xc0, 0xaf]),
      Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from([0xf4, 0x90, 0x80, 0x80]),
      Buffer.from('\\ud800\\udc00\\udfff', 'latin1'),
      Buffer.from([0xe2, 0x82]),
    ]);
    const at = text.indexOf('__bytes__');
    b.body = Buffer.concat([text.subarray(0, at + 1), bad, text.subarray(at + 8)]);
  },
  compression: (b, seed, r) => {
    const kind = r.pick(['gzip bomb', 'deflate bomb', 'gzip garbage', 'not gzip', 'br', 'gzip, gzip', 'x-unknown']);
    const mib = r.pick([16, 64]);
    const encodings: Record<string, [string, () => Buffer]> = {
      'gzip bomb': [
        'gzip',
        () =>
          bomb(`gzip ${mib}`, () => gzipSync(Buffer.concat([Buffer.from('{"a":"'), spaces(mib), Buffer.from('"}')]))),
      ],
      'deflate bomb': ['deflate', () => bomb(`deflate ${mib}`, () => deflateSync(spaces(mib)))],
      'gzip garbage': ['gzip', () => gzipSync(Buffer.from('{"model": nope'))],
      'not gzip': ['gzip', () => json(seed)],
      br: ['br', () => json(seed)],
      'gzip, gzip': ['gzip, gzip', () => gzipSync(gzipSync(json(seed)))],
      'x-unknown': ['x-unknown', () => json(seed)],
    };
    const [encoding, body] = encodings[kind]!;
    b.headers.push(['content-encoding', encoding]);
    b.body = body();
  },
  'content type': (b, _seed, r) => {
    b.headers = b.headers.filter(([k]) => k !== 'content-type');
    const type = r.pick([
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data',
      'application/json; charset=utf-16',
      'application/json; charset=latin1',
      'application/json, text/plain',
      `application/${'x'.repeat(4000)}`,
      '',
    ]);
    if (type) b.headers.push(['content-type', type]);
    if (type === 'application/x-www-form-urlencoded') b.body = Buffer.from('a=1&__proto__[x]=1&a[b][c]=2');
  },
  'header flood': (b, _seed, r) => {
    const kind = r.pick(['many', 'huge', 'duplicate length', 'length and chunked', 'bad length', 'odd values']);
    if (kind === 'many') for (let i = 0; i < 3000; i++) b.headers.push([`x-f${i}`, 'y']);
    else if (kind === 'huge') b.headers.push(['x-huge', 'y'.repeat(r.pick([8000, 20_000, 100_000]))]);
    else if (kind === 'duplicate length') b.headers.push(['content-length', '1'], ['content-length', '2']);
    else if (kind === 'length and chunked') b.headers.push(['transfer-encoding', 'chunked'], ['content-length', '5']);
    else if (kind === 'bad length')
      b.headers.push(['content-length', r.pick(['-1', 'abc', '1e3', '99999999999999999999'])]);
    else
      b.headers.push(
        ['inference-header-content-length', r.pick(['-1', 'NaN', '1e20', '999999', '0', '3'])],
        ['traceparent', r.pick(['00-zz-zz-01', `00-${'0'.repeat(32)}-${'0'.repeat(16)}-01`, 'x'.repeat(500)])],
        ['x-request-id', r.pick(['\u00ff\u00fe', 'x'.repeat(2000), '../../etc'])],
        ['cache-control', r.pick(['no-cache', 'no-store, max-age=-1', 'max-age=99999999999999999999'])],
        ['x-user-id', 'u'.repeat(r.pick([1, 5000]))],
        ['accept', r.pick(['text/event-stream', '*/*;q=x', ''])],
      );
  },
  'slow body': (b, seed, r) => {
    b.body ??= json(seed);
    b.raw.pieces = r.pick([3, 8]);
    b.raw.pauseMs = r.pick([20, 100]);
    if (r.next() < 0.4) {
      b.raw.abandonAfter = Math.floor(b.body.length / 2);
      b.abandoned = true;
    }
  },
  'odd method': (b, _seed, r) => {
    b.method = r.pick([
      'OPTIONS',
      'HEAD',
      'PUT',
      'DELETE',
      'PATCH',
      'GET',
      'POST',
      'TRACE',
      'PROPFIND',
      'FOO',
      'get',
      'CONNECT',
    ]);
    b.unknownMethod = !['OPTIONS', 'HEAD', 'PUT', 'DELETE', 'PATCH', 'GET', 'POST'].includes(b.method);
  },
  path: (b, _seed, r) => {
    b.path = r.pick([
      `/../../etc/passwd`,
      `${b.path}/../../admin/plugins`,
      `/${b.path}`,
      `${b.path}%00`,
      `${b.path}/`,
      `${b.path}?a=%&b[]=1&__proto__[x]=1&${'q=1&'.repeat(500)}`,
      `${b.path}#frag`,
      `http://evil.example${b.path}`,
      '*',
      `${b.path}${'/x'.repeat(4000)}`,
      b.path.toUpperCase(),
      b.path.replace(/\//g, '%2F'),
      `${b.path};jsessionid=1`,
    ]);
  },
  protocol: (b, seed, r) => {
    const body = json(seed);
    const head = r.pick([
      `GET ${b.path}\r\n\r\n`,
      `${b.method} ${b.path} HTTP/1.0\r\n\r\n`,
      'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
      `${b.method} ${b.path} HTTP/1.1\r\nconnection: close\r\n\r\n`,
      `${b.method} ${b.path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nbad header\r\n\r\n`,
      `${b.method} ${b.path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-bin: \u0001\u0002\r\n\r\n`,
      `${b.method} ${b.path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n`,
      `${b.method} ${b.path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`,
    ]);
    b.raw.head = Buffer.from(head, 'latin1');
    b.raw.body = Buffer.alloc(0);
  },
};

const STANDARD = new Set(['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD']);

function judge(b: Built, answer: RawAnswer): FuzzOutcome {
  const base = { mutation: b.mutation, method: b.method, path: b.path.slice(0, 120), caller: b.caller };
  if (answer.kind !== 'answer') {
    if (b.abandoned && answer.kind === 'no answer') return { ...base, result: 'abandoned' };
    if (answer.kind === 'reset while sending') return { ...base, result: answer.kind };
    return { ...base, result: answer.kind, failure: answer.detail };
  }
  const { status, body } = answer;
  const outcome: FuzzOutcome = { ...base, result: String(status) };
  const text = body.toString('utf8');
  if (status >= 500 && status !== 503 && !(status === 501 && (b.unknownMethod || !STANDARD.has(b.method))))
    return { ...outcome, failure: `server error: ${text.slice(0, 300)}` };
  if (status < 400 || b.method === 'HEAD') return outcome;
  try {
    const parsed = JSON.parse(text) as { error?: { type?: unknown; code?: unknown }; code?: unknown };
    // The Ollama API answers in Ollama's shape: the message as `error`, the code beside it.
    if (
      typeof parsed.error === 'string' &&
      typeof parsed.code === 'string' &&
      /^(https?:\/\/[^/]+)?\/api\//.test(b.path)
    )
      return outcome;
    const error = parsed.error;
    if (typeof error?.type !== 'string' || typeof error.code !== 'string')
      return { ...outcome, failure: `error body without type and code: ${text.slice(0, 300)}` };
  } catch {
    return { ...outcome, failure: `error body is not JSON: ${JSON.stringify(text.slice(0, 300))}` };
  }
  return outcome;
}
