import { Ajv, type ErrorObject } from 'ajv';
import type { PluginManifest } from '@nucleus/sdk';
import semver from 'semver';
import { SchemaChecker } from './schema-checker.js';

/** The published JSON Schema of the `nucleus` section of a plugin's package.json. */
export const PLUGIN_MANIFEST_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://nucleus.dev/schemas/plugin-manifest.json',
  title: 'Nucleus plugin manifest',
  description: 'The "nucleus" section of a plugin package.json.',
  type: 'object',
  required: ['id', 'version', 'kernelApi', 'entry'],
  additionalProperties: false,
  properties: {
    id: {
      type: 'string',
      pattern: '^[a-z][a-z0-9]*(-[a-z0-9]+)*$',
      description: 'Unique plugin id: lowercase letters and digits, words joined by dashes.',
    },
    version: { type: 'string', format: 'semver', description: 'The plugin version (semver).' },
    kernelApi: {
      type: 'string',
      format: 'semver-range',
      description: 'Semver range of the kernel API the plugin supports.',
    },
    description: { type: 'string', description: 'One line saying what the plugin does.' },
    entry: { type: 'string', minLength: 1, description: 'Entry module, relative to the package folder.' },
    provides: {
      type: 'array',
      items: { type: 'string', pattern: '^[A-Za-z]+:[A-Za-z0-9._-]+$' },
      uniqueItems: true,
      description: 'Capabilities offered, as point:name.',
    },
    requires: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9]*(-[a-z0-9]+)*$' },
      additionalProperties: { type: 'string', format: 'semver-range' },
      description: 'Plugins this one needs, by id, with semver ranges.',
    },
    configSchema: { type: 'object', description: 'JSON Schema of the plugin config section.' },
    enabledByDefault: { type: 'boolean', description: 'Activate at start unless config disables it.' },
  },
} as const;

const ajv = new Ajv({ allErrors: true, strict: false });
ajv.addFormat('semver', (v: string) => semver.valid(v) !== null);
ajv.addFormat('semver-range', (v: string) => semver.validRange(v) !== null);
const validate = ajv.compile(PLUGIN_MANIFEST_SCHEMA);
const configSchemas = new SchemaChecker(() => new Ajv({ strict: false }));

/** A manifest that failed validation; the message names each bad field. */
export class ManifestError extends Error {
  constructor(
    readonly where: string,
    readonly problems: string[],
  ) {
    super(`invalid plugin manifest in ${where}: ${problems.join('; ')}`);
    this.name = 'ManifestError';
  }
}

/** Turns one ajv error into "nucleus.field: what is wrong". */
export function describeAjvError(e: ErrorObject, root: string): string {
  let path = root + e.instancePath.replace(/\//g, '.');
  if (e.keyword === 'required') path += `.${(e.params as { missingProperty: string }).missingProperty}`;
  if (e.keyword === 'additionalProperties') {
    return `${path}: unknown field "${(e.params as { additionalProperty: string }).additionalProperty}"`;
  }
  if (e.keyword === 'required') return `${path}: is required`;
  if (e.keyword === 'format') return `${path}: must be a valid ${(e.params as { format: string }).format}`;
  return `${path}: ${e.message ?? 'is invalid'}`;
}

/** Checks a package.json's `nucleus` section and returns it typed, or throws {@link ManifestError}. */
export function validateManifest(packageJson: unknown, where: string): PluginManifest {
  const pkg = packageJson as { nucleus?: unknown } | null;
  if (!pkg || typeof pkg !== 'object' || pkg.nucleus === undefined) {
    throw new ManifestError(where, ['package.json has no "nucleus" section']);
  }
  if (!validate(pkg.nucleus)) {
    throw new ManifestError(
      where,
      (validate.errors ?? []).map((e) => describeAjvError(e, 'nucleus')),
    );
  }
  const manifest = pkg.nucleus as PluginManifest;
  if (manifest.configSchema) {
    const error = configSchemas.errorOf(manifest.configSchema);
    if (error !== undefined) {
      throw new ManifestError(where, [`nucleus.configSchema: not a valid JSON Schema (${error})`]);
    }
  }
  return manifest;
}
