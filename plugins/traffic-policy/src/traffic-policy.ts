import { readFileSync } from 'node:fs';
import { badRequest } from '@nucleus/sdk';
import { Ajv } from 'ajv';

/** Where a share of traffic goes: a version of the addressed model, another loaded model, or both. */
export interface Target {
  model?: string;
  version?: string;
}

/** An A/B split: each variant gets `weight` over the sum of weights. */
export interface WeightsPolicy {
  type: 'weights';
  variants: Array<Target & { weight: number }>;
}

/** A canary rolled out in steps while it keeps within bounds of the stable version, and rolled back when it does not. */
export interface CanaryPolicy {
  type: 'canary';
  stable: Target;
  canary: Target;
  startPercent?: number;
  stepPercent?: number;
  stepIntervalMs?: number;
  windowMs?: number;
  minRequests?: number;
  maxErrorRateIncrease?: number;
  maxLatencyRatio?: number;
}

/** The primary answers; a share of requests is copied to the shadow, whose answers are compared and never returned. */
export interface ShadowPolicy {
  type: 'shadow';
  primary: Target;
  shadow: Target;
  percent?: number;
}

/** One model name's policy, as `plugin.traffic-policy.policies.<model>` and `PUT /admin/traffic/{model}` spell it. */
export type TrafficPolicy = WeightsPolicy | CanaryPolicy | ShadowPolicy;

/** A canary's settings with the defaults the schema's descriptions name. */
export type CanarySettings = Required<Omit<CanaryPolicy, 'type' | 'stable' | 'canary'>>;

/** The canary defaults (the schema states them in its descriptions). */
export const CANARY_DEFAULTS: CanarySettings = {
  startPercent: 5,
  stepPercent: 10,
  stepIntervalMs: 60_000,
  windowMs: 60_000,
  minRequests: 20,
  maxErrorRateIncrease: 0.02,
  maxLatencyRatio: 1.5,
};

/** The share a shadow policy copies when it names none, in %. */
export const SHADOW_DEFAULT_PERCENT = 100;

// One schema for config and the admin route: the one in this plugin's manifest.
const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  nucleus: { configSchema: { properties: { policies: { additionalProperties: object } } } };
};
const validatePolicy = new Ajv({ allErrors: false, strict: false }).compile<TrafficPolicy>(
  manifest.nucleus.configSchema.properties.policies.additionalProperties,
);

/** The body as a policy, or 400 `invalid_policy` naming the field that is wrong and how. */
export function checkPolicy(body: unknown): TrafficPolicy {
  if (validatePolicy(body)) return body;
  const e = validatePolicy.errors?.[0];
  const where = e?.instancePath ? `policy${e.instancePath.replaceAll('/', '.')}` : 'policy';
  const allowed =
    e?.params && 'allowedValues' in e.params ? ` (${(e.params.allowedValues as string[]).join(', ')})` : '';
  const extra =
    e?.params && 'additionalProperty' in e.params ? ` ('${String(e.params.additionalProperty)}' is not one)` : '';
  throw badRequest('invalid_policy', `${where} ${e?.message ?? 'is invalid'}${allowed}${extra}`, where);
}

/** `name@version` for logs and status: the model a target resolves to under `addressed`, and its version. */
export function targetLabel(addressed: string, t: Target): string {
  return `${t.model ?? addressed}${t.version !== undefined ? `@${t.version}` : ''}`;
}
