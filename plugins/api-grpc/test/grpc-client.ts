import * as grpc from '@grpc/grpc-js';
import { fromJSON } from '@grpc/proto-loader';

/**
 * The protocol's messages as the published KServe v2 / Triton layout documents them, written here independently of
 * the server's .proto, with only the fields these tests use (field numbers from the spec). A client built from it
 * interoperates only if the server's wire format is the protocol's.
 */
const PARAMETER = {
  oneofs: { parameter_choice: { oneof: ['bool_param', 'int64_param', 'string_param'] } },
  fields: {
    bool_param: { type: 'bool', id: 1 },
    int64_param: { type: 'int64', id: 2 },
    string_param: { type: 'string', id: 3 },
  },
};
const CONTENTS = {
  fields: {
    int_contents: { rule: 'repeated', type: 'int32', id: 2 },
    int64_contents: { rule: 'repeated', type: 'int64', id: 3 },
    fp32_contents: { rule: 'repeated', type: 'float', id: 6 },
    bytes_contents: { rule: 'repeated', type: 'bytes', id: 8 },
  },
};
const TENSOR = {
  fields: {
    name: { type: 'string', id: 1 },
    datatype: { type: 'string', id: 2 },
    shape: { rule: 'repeated', type: 'int64', id: 3 },
    parameters: { keyType: 'string', type: 'InferParameter', id: 4 },
    contents: { type: 'InferTensorContents', id: 5 },
  },
};
const empty = { fields: {} };
const named = { fields: { name: { type: 'string', id: 1 }, version: { type: 'string', id: 2 } } };
const rpc = (requestType: string, responseType: string, stream = false) => ({
  requestType,
  responseType,
  ...(stream && { requestStream: true, responseStream: true }),
});

export const PROTOCOL = {
  nested: {
    inference: {
      nested: {
        GRPCInferenceService: {
          methods: {
            ServerLive: rpc('ServerLiveRequest', 'ServerLiveResponse'),
            ServerReady: rpc('ServerReadyRequest', 'ServerReadyResponse'),
            ModelReady: rpc('ModelReadyRequest', 'ModelReadyResponse'),
            ServerMetadata: rpc('ServerMetadataRequest', 'ServerMetadataResponse'),
            ModelMetadata: rpc('ModelMetadataRequest', 'ModelMetadataResponse'),
            ModelInfer: rpc('ModelInferRequest', 'ModelInferResponse'),
            ModelStreamInfer: rpc('ModelInferRequest', 'ModelStreamInferResponse', true),
            RepositoryIndex: rpc('RepositoryIndexRequest', 'RepositoryIndexResponse'),
            RepositoryModelLoad: rpc('RepositoryModelLoadRequest', 'RepositoryModelLoadResponse'),
            RepositoryModelUnload: rpc('RepositoryModelUnloadRequest', 'RepositoryModelUnloadResponse'),
          },
        },
        ServerLiveRequest: empty,
        ServerLiveResponse: { fields: { live: { type: 'bool', id: 1 } } },
        ServerReadyRequest: empty,
        ServerReadyResponse: { fields: { ready: { type: 'bool', id: 1 } } },
        ModelReadyRequest: named,
        ModelReadyResponse: { fields: { ready: { type: 'bool', id: 1 } } },
        ServerMetadataRequest: empty,
        ServerMetadataResponse: {
          fields: {
            name: { type: 'string', id: 1 },
            version: { type: 'string', id: 2 },
            extensions: { rule: 'repeated', type: 'string', id: 3 },
          },
        },
        ModelMetadataRequest: named,
        ModelMetadataResponse: {
          nested: {
            TensorMetadata: {
              fields: {
                name: { type: 'string', id: 1 },
                datatype: { type: 'string', id: 2 },
                shape: { rule: 'repeated', type: 'int64', id: 3 },
              },
            },
          },
          fields: {
            name: { type: 'string', id: 1 },
            versions: { rule: 'repeated', type: 'string', id: 2 },
            platform: { type: 'string', id: 3 },
            inputs: { rule: 'repeated', type: 'TensorMetadata', id: 4 },
            outputs: { rule: 'repeated', type: 'TensorMetadata', id: 5 },
          },
        },
        InferParameter: PARAMETER,
        InferTensorContents: CONTENTS,
        ModelInferRequest: {
          nested: {
            InferInputTensor: TENSOR,
            InferRequestedOutputTensor: { fields: { name: { type: 'string', id: 1 } } },
          },
          fields: {
            model_name: { type: 'string', id: 1 },
            model_version: { type: 'string', id: 2 },
            id: { type: 'string', id: 3 },
            parameters: { keyType: 'string', type: 'InferParameter', id: 4 },
            inputs: { rule: 'repeated', type: 'InferInputTensor', id: 5 },
            outputs: { rule: 'repeated', type: 'InferRequestedOutputTensor', id: 6 },
            raw_input_contents: { rule: 'repeated', type: 'bytes', id: 7 },
          },
        },
        ModelInferResponse: {
          nested: { InferOutputTensor: TENSOR },
          fields: {
            model_name: { type: 'string', id: 1 },
            model_version: { type: 'string', id: 2 },
            id: { type: 'string', id: 3 },
            parameters: { keyType: 'string', type: 'InferParameter', id: 4 },
            outputs: { rule: 'repeated', type: 'InferOutputTensor', id: 5 },
            raw_output_contents: { rule: 'repeated', type: 'bytes', id: 6 },
          },
        },
        ModelStreamInferResponse: {
          fields: { error_message: { type: 'string', id: 1 }, infer_response: { type: 'ModelInferResponse', id: 2 } },
        },
        RepositoryIndexRequest: {
          fields: { repository_name: { type: 'string', id: 1 }, ready: { type: 'bool', id: 2 } },
        },
        RepositoryIndexResponse: {
          nested: {
            ModelIndex: {
              fields: {
                name: { type: 'string', id: 1 },
                version: { type: 'string', id: 2 },
                state: { type: 'string', id: 3 },
                reason: { type: 'string', id: 4 },
              },
            },
          },
          fields: { models: { rule: 'repeated', type: 'ModelIndex', id: 1 } },
        },
        RepositoryModelLoadRequest: {
          fields: { repository_name: { type: 'string', id: 1 }, model_name: { type: 'string', id: 2 } },
        },
        RepositoryModelLoadResponse: empty,
        RepositoryModelUnloadRequest: {
          fields: { repository_name: { type: 'string', id: 1 }, model_name: { type: 'string', id: 2 } },
        },
        RepositoryModelUnloadResponse: empty,
      },
    },
  },
};

/** A client of the service the test description above describes. */
export type InferenceClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

/** The official grpc-js client over the independent description, on a loopback address. */
export function inferenceClient(
  port: number,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
): InferenceClient {
  const definition = fromJSON(PROTOCOL as Parameters<typeof fromJSON>[0], {
    keepCase: true,
    longs: String,
    defaults: true,
    arrays: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    inference: {
      GRPCInferenceService: new (
        address: string,
        credentials: grpc.ChannelCredentials,
        options: grpc.ChannelOptions,
      ) => InferenceClient;
    };
  };
  return new pkg.inference.GRPCInferenceService(`127.0.0.1:${port}`, credentials, options);
}

/** Metadata with a bearer key (and anything else given). */
export function withKey(key: string | undefined, extra: Record<string, string> = {}): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (key !== undefined) metadata.set('authorization', `Bearer ${key}`);
  for (const [k, v] of Object.entries(extra)) metadata.set(k, v);
  return metadata;
}

/** A unary call as a promise; rejects with the ServiceError (code, details, metadata). */
export function unary<T>(
  client: InferenceClient,
  method: string,
  request: unknown,
  metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<T> {
  return new Promise((resolve, reject) => {
    (
      client[method] as (
        r: unknown,
        m: grpc.Metadata,
        o: grpc.CallOptions,
        cb: (e: grpc.ServiceError | null, v: T) => void,
      ) => void
    )(request, metadata, options, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

/** The error a call failed with; fails the test if it succeeded. */
export async function failure(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('the call succeeded where it should have failed');
}

/** Sends `body` as the request message of `path` without any schema: raw bytes, as a broken client might. */
export function rawCall(
  port: number,
  path: string,
  body: Buffer,
  metadata: grpc.Metadata,
): Promise<grpc.ServiceError | Buffer> {
  const client = new grpc.Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      metadata,
      (err, value) => {
        client.close();
        resolve(err ?? (value as Buffer));
      },
    );
  });
}
