// The gRPC suite: one-row tabular predictions per second over the KServe v2 gRPC protocol (api-grpc) against the same
// prediction over HTTP as JSON and as binary tensor data, on one server, one after another.
import { createServer, type AddressInfo } from 'node:net';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { machineInfo } from './machine.js';
import { record, type ResultRow } from './report.js';
import { startServerProcess } from './server-process.js';
import { closedLoop } from './stats.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLIENTS = [1, 16];
const PROTO = fileURLToPath(new URL('../../plugins/api-grpc/proto/grpc_predict_v2.proto', import.meta.url));
const ROW = [35, 48000, 0.3, 6, 0, 5, 1, 0.2];
// The prediction cache would answer the repeated HTTP body without running the model, while gRPC always runs it:
// the rows would compare a cache lookup with an inference.
const SETTINGS = ['--set', 'plugins.disabled=tracing,alerts,prediction-cache'];

/** An HTTP answer counts only when the model ran for it (no prediction cache took part). */
const ran = (res: Response): boolean => res.ok && !res.headers.has('x-prediction-cache');

type Infer = (request: unknown, callback: (err: grpc.ServiceError | null, value: unknown) => void) => void;

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The gRPC suite: tabular-classifier, one row per request, over gRPC, HTTP JSON and HTTP binary. */
export async function grpcSuite(): Promise<string> {
  const port = await freePort();
  const server = await startServerProcess([...SETTINGS, '--set', `plugin.api-grpc.port=${port}`]);
  const notes = [
    `Load average when the suite started: ${loadavg()
      .map((l) => l.toFixed(1))
      .join(', ')} (1, 5, 15 min).`,
    "tabular-classifier (8 FP32 features), one row per request, closed-loop clients in the bench process, the server in its own process; gRPC with typed fp32_contents over one channel (HTTP/2, multiplexed), HTTP with keep-alive (fetch). ratio = requests/s / HTTP JSON at the same client count. The prediction cache is off, so every row runs the model; at 1 client each request also waits the dynamic batcher's delay (batching.maxQueueDelayMs, 2 ms by default) for others to join it.",
  ];
  const definition = loadSync(PROTO, { keepCase: true, longs: String, defaults: false, arrays: true, oneofs: true });
  const Service = grpc.loadPackageDefinition(definition).inference as unknown as {
    GRPCInferenceService: new (
      address: string,
      credentials: grpc.ChannelCredentials,
    ) => grpc.Client & { ModelInfer: Infer };
  };
  const client = new Service.GRPCInferenceService(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const grpcRequest = {
    model_name: 'tabular-classifier',
    inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8], contents: { fp32_contents: ROW } }],
  };
  const url = `${server.url}/v2/models/tabular-classifier/infer`;
  const json = JSON.stringify({ inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 8], data: ROW }] });
  const bytes = Buffer.from(new Float32Array(ROW).buffer);
  const header = Buffer.from(
    JSON.stringify({
      inputs: [
        { name: 'features', datatype: 'FP32', shape: [1, 8], parameters: { binary_data_size: bytes.byteLength } },
      ],
    }),
  );
  const binary = Buffer.concat([header, bytes]);
  const ops: Record<string, () => Promise<boolean>> = {
    'HTTP JSON': async () => {
      const res = await fetch(url, { method: 'POST', body: json, headers: { 'content-type': 'application/json' } });
      await res.arrayBuffer();
      return ran(res);
    },
    'HTTP binary tensor data': async () => {
      const res = await fetch(url, {
        method: 'POST',
        body: binary,
        headers: {
          'content-type': 'application/octet-stream',
          'inference-header-content-length': String(header.byteLength),
        },
      });
      await res.arrayBuffer();
      return ran(res);
    },
    gRPC: () => new Promise((resolve) => client.ModelInfer(grpcRequest, (err) => resolve(err === null))),
  };
  const rows: ResultRow[] = [];
  try {
    for (const clients of CLIENTS) {
      let base = NaN;
      for (const [label, op] of Object.entries(ops)) {
        await closedLoop(op, clients, 1); // warm-up
        const stats = await closedLoop(op, clients, SECONDS);
        if (label === 'HTTP JSON') base = stats.throughput;
        rows.push({
          label: `${label}, ${clients} client${clients > 1 ? 's' : ''}`,
          stats,
          ratio: stats.throughput / base,
        });
      }
    }
  } finally {
    client.close();
    await server.stop();
  }
  return record(
    'grpc',
    machineInfo(),
    [{ title: 'One-row tabular predictions: gRPC against HTTP JSON and binary (same run)', unit: 'predictions', rows }],
    notes,
  );
}
