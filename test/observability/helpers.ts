import { strict as assert } from 'node:assert';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import parsePrometheusTextFormat, { type PrometheusFamily, type PrometheusSample } from 'parse-prometheus-text-format';
import { REPO_ROOT } from '../helpers/paths.js';

/** The folder of a plugin shipped in this repository. */
export function pluginDir(id: string): string {
  return join(REPO_ROOT, 'plugins', id);
}

/** Waits until `pred` holds, polling every 10 ms; fails with `what` after `timeoutMs`. */
export async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * A Prometheus exposition parsed by a real text-format parser, with look-ups by name and labels. The
 * parser keeps the labels of counters and gauges but folds every series of a histogram into one, so
 * samples are read from a second pass in which histograms are untyped: `x_bucket`, `x_sum` and `x_count`
 * are then families of their own with their labels intact.
 */
export class Exposition {
  /** Every family with its HELP and TYPE (histogram samples folded, see above). */
  readonly families: Map<string, PrometheusFamily>;
  private readonly samples = new Map<string, PrometheusSample[]>();

  constructor(readonly text: string) {
    this.families = new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f]));
    const untyped = text
      .split('\n')
      .filter((line) => !/^# TYPE \S+ (histogram|summary)$/.test(line))
      .join('\n');
    for (const f of parsePrometheusTextFormat(untyped))
      this.samples.set(f.name, [...(this.samples.get(f.name) ?? []), ...f.metrics]);
  }

  /** The family with this name; fails when absent. */
  family(name: string): PrometheusFamily {
    const f = this.families.get(name);
    assert.ok(f, `metric ${name} is exposed`);
    return f;
  }

  /** The first sample named `name` (a family, or `x_bucket`/`x_sum`/`x_count`) whose labels include `labels`; fails when none does. */
  sample(name: string, labels: Record<string, string> = {}): PrometheusSample {
    const s = (this.samples.get(name) ?? []).find((m) =>
      Object.entries(labels).every(([k, v]) => (m.labels?.[k] ?? '') === v),
    );
    assert.ok(s, `${name}${JSON.stringify(labels)} is exposed`);
    return s;
  }

  /** The value of a counter or gauge sample. */
  value(name: string, labels: Record<string, string> = {}): number {
    return Number(this.sample(name, labels).value);
  }

  /** The count of a histogram series. */
  count(name: string, labels: Record<string, string> = {}): number {
    return this.value(`${name}_count`, labels);
  }

  /** The sum of a histogram series. */
  sum(name: string, labels: Record<string, string> = {}): number {
    return this.value(`${name}_sum`, labels);
  }

  /** The cumulative count of one bucket (`le`) of a histogram series. */
  bucket(name: string, labels: Record<string, string>, le: string): number {
    return this.value(`${name}_bucket`, { ...labels, le });
  }
}

/** A request a {@link Receiver} got. */
export interface Received {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** An HTTP server on 127.0.0.1 that records the JSON it is sent (an OTLP collector, a webhook, an Alertmanager). */
export class Receiver {
  readonly received: Received[] = [];
  private status = 200;

  private constructor(
    private readonly server: Server,
    /** `http://127.0.0.1:<port>`. */
    readonly url: string,
  ) {}

  /** Starts listening on a free loopback port. */
  static async start(): Promise<Receiver> {
    let receiver: Receiver | undefined;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // Not JSON: keep the text.
        }
        receiver!.received.push({ method: req.method ?? '', path: req.url ?? '', headers: req.headers, body });
        res.writeHead(receiver!.status, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    receiver = new Receiver(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return receiver;
  }

  /** Answers later requests with this status. */
  answer(status: number): void {
    this.status = status;
  }

  /** The requests received on one path. */
  on(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  /** Stops listening. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
