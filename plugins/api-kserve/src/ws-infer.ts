import type { InferenceService, WsRequestHandler } from '@nucleus/sdk';
import { decodeNativeInputs, encodeResult } from './native-routes.js';
import { checkBody, validators } from './request-schemas.js';

/**
 * Tensor inference over `/ws`: `{"type":"infer","id",…}` with `/infer`'s fields (`model`, `version`, `inputs`,
 * `outputs`) is answered with `{"type":"result","id",model,version,outputs,shapes,dtypes}`. The engine's batcher and
 * admission see it as they see an HTTP request; cancelling it aborts it where it waits.
 */
export function wsInfer(service: () => InferenceService): WsRequestHandler {
  return {
    types: ['infer'],
    handle: async (ws) => {
      const body = checkBody(validators.nativeInfer, ws.body, 'inference request');
      const engine = service();
      const version = body.version === undefined ? undefined : String(body.version);
      const info = engine.get(body.model, version);
      const result = await engine.infer({
        model: body.model,
        ...(version !== undefined && { version }),
        inputs: decodeNativeInputs(body.inputs, info),
        ...(body.outputs && { outputs: body.outputs }),
        signal: ws.signal,
        requestId: `ws-${ws.key}-${String(ws.id)}`,
      });
      ws.send({ type: 'result', ...encodeResult(result) });
    },
  };
}
