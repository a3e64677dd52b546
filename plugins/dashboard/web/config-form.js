import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

// The schema keywords plugin manifests use, checked here before a change is sent; the server checks it again with
// ajv against the same schema.
function typesOf(schema) {
  return Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
}

function typeOfValue(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (Number.isInteger(value)) return 'integer';
  return typeof value;
}

/** Why `value` does not fit `schema` (a message naming `where`), or null when it does. */
export function schemaProblem(schema, value, where) {
  const types = typesOf(schema);
  const type = typeOfValue(value);
  if (types.length > 0 && !types.includes(type) && !(type === 'integer' && types.includes('number')))
    return `${where} must be ${types.join(' or ')}`;
  if (schema.enum && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value)))
    return `${where} must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`;
  if (typeof value === 'number') {
    if (schema.minimum !== undefined && value < schema.minimum) return `${where} must be at least ${schema.minimum}`;
    if (schema.maximum !== undefined && value > schema.maximum) return `${where} must be at most ${schema.maximum}`;
    if (schema.exclusiveMinimum !== undefined && value <= schema.exclusiveMinimum)
      return `${where} must be above ${schema.exclusiveMinimum}`;
  }
  if (typeof value === 'string') {
    if (schema.minLength !== undefined && value.length < schema.minLength)
      return `${where} must have at least ${schema.minLength} characters`;
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value))
      return `${where} must match ${schema.pattern}`;
  }
  if (type === 'object' && schema.properties) {
    for (const [k, sub] of Object.entries(schema.properties)) {
      if (value[k] === undefined) continue;
      const problem = schemaProblem(sub, value[k], `${where}.${k}`);
      if (problem) return problem;
    }
  }
  if (type === 'array' && schema.items) {
    for (let i = 0; i < value.length; i++) {
      const problem = schemaProblem(schema.items, value[i], `${where}[${i}]`);
      if (problem) return problem;
    }
  }
  return null;
}

// Every key a field edits: the leaves of nested objects with properties, by dotted path.
function leaves(schema, prefix = '') {
  return Object.entries(schema.properties ?? {}).flatMap(([k, sub]) =>
    typesOf(sub).includes('object') && sub.properties ? leaves(sub, `${prefix}${k}.`) : [[`${prefix}${k}`, sub]],
  );
}

function valueAt(values, path) {
  return path.split('.').reduce((v, k) => (v && typeof v === 'object' ? v[k] : undefined), values);
}

function kindOf(schema) {
  const types = typesOf(schema).filter((t) => t !== 'null');
  if (schema.enum) return 'enum';
  if (types.length === 1 && (types[0] === 'integer' || types[0] === 'number')) return 'number';
  if (types.length === 1 && types[0] === 'boolean') return 'boolean';
  if (types.length === 1 && types[0] === 'string') return 'string';
  return 'json';
}

// What the field shows for a value, and the value a field's text stands for.
function shown(kind, value) {
  if (kind === 'boolean') return value === true;
  if (kind === 'json') return value === undefined ? '' : JSON.stringify(value);
  if (kind === 'enum') return JSON.stringify(value ?? null);
  return value === undefined || value === null ? '' : String(value);
}

function parsed(kind, schema, raw, where) {
  if (kind === 'boolean') return raw;
  if (kind === 'enum') return JSON.parse(raw);
  if (raw === '' && typesOf(schema).includes('null')) return null;
  if (kind === 'number') {
    if (raw.trim() === '' || !Number.isFinite(Number(raw))) throw new Error(`${where} must be a number`);
    return Number(raw);
  }
  if (kind === 'string') return raw;
  try {
    return JSON.parse(raw);
  } catch (err) {
    throw new Error(`${where} is not JSON (${err.message})`);
  }
}

function Field({ id, path, schema, kind, raw, runtime, onChange }) {
  const fieldId = `config-${id}-${path.replaceAll('.', '-')}`;
  const hintId = `${fieldId}-hint`;
  const hint = `${schema.description ?? ''}${runtime ? '' : ' Set in the config file; takes a restart.'}`.trim();
  const common = { id: fieldId, disabled: !runtime, 'aria-describedby': hint ? hintId : undefined };
  let control;
  if (kind === 'boolean')
    control = html`<input type="checkbox" ...${common} checked=${raw} onChange=${(e) => onChange(e.currentTarget.checked)} />`;
  else if (kind === 'enum')
    control = html`<select ...${common} value=${raw} onChange=${(e) => onChange(e.currentTarget.value)}>
      ${schema.enum.map((v) => html`<option value=${JSON.stringify(v)}>${v === null ? '(none)' : String(v)}</option>`)}
    </select>`;
  else if (kind === 'json')
    control = html`<textarea ...${common} rows="2" spellcheck="false" value=${raw} onInput=${(e) => onChange(e.currentTarget.value)} />`;
  else
    control = html`<input
      ...${common}
      type=${kind === 'number' ? 'number' : 'text'}
      step=${kind === 'number' ? 'any' : undefined}
      placeholder=${typesOf(schema).includes('null') ? 'none' : undefined}
      value=${raw}
      onInput=${(e) => onChange(e.currentTarget.value)}
    />`;
  return html`<div class="field config-field" data-key=${path}>
    <label for=${fieldId}>${path}</label>
    ${control}
    ${hint && html`<small id=${hintId} class="hint">${hint}</small>`}
  </div>`;
}

/**
 * A plugin's config section as a form made from its JSON schema: keys the server changes at run time are editable,
 * the rest shown. A change is checked against the schema here, then sent as `PATCH /admin/config`, which checks it
 * again and applies it.
 */
export function ConfigForm({ id, run, onClose }) {
  const [view, setView] = useState(null);
  const [raw, setRaw] = useState({});
  const [problem, setProblem] = useState(null);
  const [error, setError] = useState(null);
  const load = () =>
    api(`/dashboard/api/plugins/${encodeURIComponent(id)}/config`).then(
      (v) => {
        setView(v);
        setRaw(
          Object.fromEntries(leaves(v.schema).map(([path, s]) => [path, shown(kindOf(s), valueAt(v.values, path))])),
        );
      },
      (err) => setError(err.message),
    );
  useEffect(() => {
    load();
  }, [id]);
  const submit = (e) => {
    e.preventDefault();
    const changes = {};
    try {
      for (const [path, s] of leaves(view.schema)) {
        if (!view.runtimeKeys.includes(path)) continue;
        const value = parsed(kindOf(s), s, raw[path], path);
        const bad = schemaProblem(s, value, path);
        if (bad) throw new Error(bad);
        if (JSON.stringify(value) !== JSON.stringify(valueAt(view.values, path) ?? null))
          changes[`plugin.${id}.${path}`] = value;
      }
    } catch (err) {
      setProblem(err.message);
      return;
    }
    setProblem(null);
    const keys = Object.keys(changes);
    if (keys.length === 0) {
      setProblem('nothing changed');
      return;
    }
    run(`Change ${keys.join(', ')} of plugin "${id}"?`, '/admin/config', { method: 'PATCH', body: changes }).then(load);
  };
  const fields = view ? leaves(view.schema) : [];
  return html`<form class="config-form" aria-labelledby="config-title" onSubmit=${submit}>
    <h3 id="config-title">Config of ${id}</h3>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${view && fields.length === 0 && html`<p class="note">This plugin has no settings.</p>`}
    ${fields.map(
      ([path, s]) => html`<${Field}
        key=${path}
        id=${id}
        path=${path}
        schema=${s}
        kind=${kindOf(s)}
        raw=${raw[path]}
        runtime=${view.runtimeKeys.includes(path)}
        onChange=${(v) => setRaw((now) => ({ ...now, [path]: v }))}
      />`,
    )}
    ${problem && html`<p class="error" role="alert">${problem}</p>`}
    <div class="buttons">
      ${view?.runtimeKeys.length > 0 && html`<button type="submit">Save config</button>`}
      <button type="button" onClick=${onClose}>Close</button>
    </div>
  </form>`;
}
