import { configKeys, type JsonSchema } from './config-schema.js';
import { envNamesOf, schemaTypes } from './env-names.js';

/** The Markdown reference of every config key, generated from the schema so the README cannot drift from it. */
export function renderConfigReference(schema: JsonSchema): string {
  const lines = ['| Key | Env var | Type | Default | Runtime | Description |', '| --- | --- | --- | --- | --- | --- |'];
  for (const key of configKeys(schema)) {
    const env = envNamesOf(key)
      .map((name) => `\`${name}\``)
      .join('<br>');
    lines.push(row(key.path, env, key.schema, key.runtime));
    // Fields of list items (a model, an API key) have no env var of their own but are just as much a part of the
    // config.
    const itemFields = key.schema.items?.properties;
    for (const [name, field] of Object.entries(itemFields ?? {})) {
      const required = key.schema.items?.required?.includes(name) === true;
      lines.push(row(`${key.path}[].${name}`, '', field, false, required ? 'Required. ' : ''));
    }
  }
  lines.push(
    '',
    'Precedence: command line > environment > config file > default. The env var of a key is `NUCLEUS_` and its ' +
      'path in',
    'upper snake case; lists and objects are written as JSON (a list of strings may also be comma-separated).',
    "A plugin's settings live under `plugin.<plugin id>` and are checked against the schema the plugin declares:",
    '`plugin.backend-cpu.intraOpNumThreads` is set by `NUCLEUS_PLUGIN_BACKEND_CPU_INTRA_OP_NUM_THREADS`.',
    'Keys marked runtime can be changed without a restart through the admin API.',
  );
  return `${lines.join('\n')}\n`;
}

function row(path: string, env: string, schema: JsonSchema, runtime: boolean, prefix = ''): string {
  const description =
    prefix + (schema.description ?? '') + (schema['x-secret'] === true ? ' Secret: shown as `***`.' : '');
  const defaultCell = schema.default === undefined ? '' : `\`${JSON.stringify(schema.default)}\``;
  return `| \`${path}\` | ${env} | ${cell(typeName(schema))} | ${cell(defaultCell)} | ${runtime ? 'yes' : ''} | ${cell(description.trim())} |`;
}

function typeName(schema: JsonSchema): string {
  if (schema.enum !== undefined) return schema.enum.map((value) => JSON.stringify(value)).join(' \\| ');
  const names = schemaTypes(schema).map((type) => {
    if (type !== 'array') return type;
    const item = schemaTypes(schema.items ?? {});
    return item.length === 1 ? `${item[0]}[]` : 'array';
  });
  const text = names.join(' \\| ');
  const bounds: string[] = [];
  if (schema.minimum !== undefined) bounds.push(`≥ ${schema.minimum}`);
  if (schema.maximum !== undefined) bounds.push(`≤ ${schema.maximum}`);
  return bounds.length === 0 ? text : `${text} (${bounds.join(', ')})`;
}

// A pipe inside a cell would end it.
function cell(text: string): string {
  return text.replace(/(?<!\\)\|/g, '\\|').replace(/\n/g, ' ');
}
