import type { ExtensionPointView } from './extension-points.js';
import type { GatePass, GateRequest, RequestGate } from './request-gate.js';

const OPEN: GatePass = Object.freeze({ headers: Object.freeze({}), holdStream() {}, release() {} });

/**
 * Runs a request past every gate contributed at `requestGate`, highest priority first, and gives one pass for all
 * (their headers merged, the first gate's winning). When one refuses, the passes the others gave are released and
 * its error thrown: the caller turns it into its protocol's answer (HTTP 429, a WebSocket error frame, gRPC
 * RESOURCE_EXHAUSTED). Without gates every request passes.
 */
export async function admitRequest(gates: ExtensionPointView<RequestGate>, request: GateRequest): Promise<GatePass> {
  const contributions = gates.list();
  if (contributions.length === 0) return OPEN;
  const passes: GatePass[] = [];
  try {
    for (const c of contributions) passes.push(await gates.use(c, (gate) => gate.admit(request)));
  } catch (err) {
    for (const pass of passes) pass.release();
    throw err;
  }
  if (passes.length === 1) return passes[0]!;
  const headers: Record<string, string> = {};
  for (const pass of [...passes].reverse()) Object.assign(headers, pass.headers);
  const held: GatePass[] = [];
  return {
    headers,
    holdStream() {
      try {
        for (const pass of passes) {
          pass.holdStream();
          held.push(pass);
        }
      } catch (err) {
        for (const pass of held.splice(0)) pass.release();
        throw err;
      }
    },
    release() {
      for (const pass of passes) pass.release();
    },
  };
}
