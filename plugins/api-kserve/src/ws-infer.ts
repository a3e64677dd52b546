import type { InferenceHooks, InferenceService, WsRequestHandler } from '@nucleus/sdk';
import { decodeNativeInputs, encodeResult } from './native-routes.js';
import { checkBody, validators } from './request-schemas.js';

/**
 * Tensor inference over `/ws`: `{"type":"infer","id",…}` with `/infer`'s fields (`model`, `version`, `inputs`,
 * `outputs`) is answered with `{"type":"result","id",model,version,outputs,shapes,dtypes}`. It runs through the hooks
 * and routers as `/infer` does (A/B, canary, shadow; `postInference` sees its answer), and the engine's batcher and
 * admission see it as they see an HTTP request; cancelling it aborts it where it waits.
 */
export function wsInfer(service: () => InferenceService, hooks: InferenceHooks): WsRequestHandler {
  return {
    types: ['infer'],
    handle: async (ws) => {
      // Only the address is checked before the hooks, as for `/infer`: a hook may build `inputs`.
      const address = checkBody(validators.nativeAddress, ws.body, 'inference request');
      const request = {
        model: address.model,
        ...(address.version !== undefined && { version: String(address.version) }),
        body: address as Record<string, unknown>,
      };
      const answer = await hooks.run(
        request,
        ws.headers,
        async (routed) => {
          const body = { ...checkBody(validators.nativeInfer, routed.body, 'inference request'), model: routed.model };
          const engine = service();
          const info = engine.get(body.model, routed.version);
          const result = await engine.infer({
            model: body.model,
            ...(routed.version !== undefined && { version: routed.version }),
            inputs: decodeNativeInputs(body.inputs, info),
            ...(body.outputs && { outputs: body.outputs }),
            signal: ws.signal,
            requestId: ws.requestId,
          });
          return encodeResult(result) as unknown as Record<string, unknown>;
        },
        ws.exchange,
      );
      ws.send({ type: 'result', ...answer });
    },
  };
}
