import { fileURLToPath } from 'node:url';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import {
  definePlugin,
  ExtensionPoints,
  InferenceHooks,
  NucleusError,
  optionalService,
  ServiceRefs,
  type PluginContext,
} from '@nucleus/sdk';
import { credentialsFor, GrpcListener, type TlsSettings } from './grpc-listener.js';
import { inferenceRpcs } from './inference-rpcs.js';
import { RpcGate, SERVICE } from './rpc-gate.js';

export { SERVICE } from './rpc-gate.js';

/** The protocol file the server speaks, shipped with the plugin. */
export const PROTO_FILE = fileURLToPath(new URL('../proto/grpc_predict_v2.proto', import.meta.url));

/** The port Triton serves gRPC on, and so the one clients expect. */
export const DEFAULT_PORT = 8001;

/** The api-grpc plugin's config section (`plugin.api-grpc`). */
export interface ApiGrpcConfig {
  port?: number;
  host?: string;
  serverName: string;
  shutdownGraceMs: number;
  maxMessageBytes: number;
}

/** The service definition, loaded from the .proto: field names as written, 64-bit integers as text, arrays always. */
function serviceDefinition(): ServiceDefinition {
  const definition = loadSync(PROTO_FILE, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: false,
    arrays: true,
    objects: true,
    oneofs: true,
  });
  return definition[SERVICE] as ServiceDefinition;
}

/** The Open Inference Protocol over gRPC on its own port, served by the kernel's engines, with HTTP's keys and limits. */
export default definePlugin({
  deps: {
    inference: optionalService(ServiceRefs.inference),
    generation: optionalService(ServiceRefs.generation),
    registry: optionalService(ServiceRefs.models),
    readiness: optionalService(ServiceRefs.readiness),
    auth: optionalService(ServiceRefs.auth),
  },
  async activate(ctx: PluginContext<ApiGrpcConfig>, { inference, generation, registry, readiness, auth }) {
    // Where the gRPC server listens, for operators and for tests that asked for any free port.
    const status = (where: Record<string, unknown>) =>
      ctx.contribute(
        ExtensionPoints.routes,
        { method: 'GET', path: '/admin/grpc', access: 'admin', handler: () => ({ service: SERVICE, ...where }) },
        { name: 'grpc-status/GET /admin/grpc' },
      );
    // A one-shot command (`nucleus quantize`, `models ls`) serves nobody: no port of its own to take.
    if (ctx.serving === false) return void status({ listening: false });
    const shutdown = new AbortController();
    const gate = new RpcGate({
      events: ctx.events,
      logger: ctx.logger,
      auth,
      readiness,
      shutdown: shutdown.signal,
      gates: ctx.extensionPoint(ExtensionPoints.requestGate),
    });
    const engines = {
      inference: () => {
        if (!inference)
          throw new NucleusError(503, 'engine_unavailable', 'the inference engine is not running in this server');
        return inference;
      },
      generation: () => generation,
      models: () => registry,
      readiness,
    };
    const implementation = inferenceRpcs(
      gate,
      engines,
      { name: ctx.config.serverName, version: ctx.version },
      new InferenceHooks(ctx),
    );
    const host = ctx.config.host ?? String(ctx.configValue('server.host') ?? '127.0.0.1');
    const tls = ctx.configValue('server.tls') as TlsSettings | undefined;
    // A server on any free HTTP port (tests, several servers on one host) takes any free gRPC port as well.
    const port = ctx.config.port ?? (ctx.configValue('server.port') === 0 ? 0 : DEFAULT_PORT);
    const listener = await GrpcListener.listen(serviceDefinition(), implementation, {
      host,
      port,
      credentials: credentialsFor(tls),
      credentialsKey: JSON.stringify(tls ?? {}),
      maxMessageBytes: ctx.config.maxMessageBytes,
    });
    const where = { host, port: listener.port, tls: Boolean(tls?.cert && tls.key) };
    ctx.logger.info(where, 'gRPC inference listening');
    status(where);
    ctx.onDispose(async () => {
      // New calls are refused from here; those in flight get the grace period, then are cancelled.
      await listener.close(ctx.config.shutdownGraceMs);
      await gate.drain(ctx.config.shutdownGraceMs);
      shutdown.abort();
    });
  },
});
