import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

// Inputs with at most this many values get a field per value; larger ones a JSON area.
const MAX_FIELDS = 16;
const NUMERIC = /^(BOOL|U?INT(8|16|32|64)|FP(16|32|64)|BF16)$/;

// A dynamic dimension (-1) is taken as 1: one row, which is what a person filling a form sends.
function concreteShape(shape) {
  return shape.map((d) => (d < 0 ? 1 : d));
}

function initialValue(input) {
  const count = concreteShape(input.shape).reduce((a, b) => a * b, 1);
  const fill = input.datatype === 'BYTES' ? '' : 0;
  return count <= MAX_FIELDS && NUMERIC.test(input.datatype)
    ? Array.from({ length: count }, () => String(fill))
    : JSON.stringify(Array.from({ length: count }, () => fill));
}

// The tensor as the v2 protocol takes it, or a message saying which field is wrong.
function tensorOf(input, value) {
  const shape = concreteShape(input.shape);
  const count = shape.reduce((a, b) => a * b, 1);
  let data;
  if (Array.isArray(value)) {
    data = value.map((v, i) => {
      const n = Number(v);
      if (v.trim() === '' || !Number.isFinite(n)) throw new Error(`${input.name}[${i}]: "${v}" is not a number`);
      return n;
    });
  } else {
    try {
      data = JSON.parse(value);
    } catch (err) {
      throw new Error(`${input.name}: not JSON (${err.message})`);
    }
    data = Array.isArray(data) ? data.flat(Number.POSITIVE_INFINITY) : [data];
    if (data.length !== count)
      throw new Error(`${input.name}: ${data.length} values, its shape [${shape}] takes ${count}`);
  }
  return { name: input.name, datatype: input.datatype, shape, data };
}

function InputField({ input, value, onChange }) {
  const id = `tensor-${input.name}`;
  const label = `${input.name} (${input.datatype}, shape [${input.shape.join(', ')}])`;
  if (!Array.isArray(value))
    return html`<div class="field">
      <label for=${id}>${label}, as JSON</label>
      <textarea id=${id} rows="4" spellcheck="false" value=${value} onInput=${(e) => onChange(e.currentTarget.value)} />
    </div>`;
  return html`<fieldset class="tensor-values">
    <legend>${label}</legend>
    ${value.map(
      (v, i) => html`<label>
        <span class="visually-hidden">${input.name} value</span> ${i}
        <input
          type="number"
          step="any"
          required
          value=${v}
          onInput=${(e) => onChange(value.map((old, j) => (j === i ? e.currentTarget.value : old)))}
        />
      </label>`,
    )}
  </fieldset>`;
}

function Outputs({ outputs }) {
  return html`<div class="table-wrap">
    <table class="outputs">
      <caption>Outputs</caption>
      <thead>
        <tr>
          <th scope="col">Name</th>
          <th scope="col">Type</th>
          <th scope="col">Shape</th>
          <th scope="col">Values</th>
        </tr>
      </thead>
      <tbody>
        ${outputs.map(
          (o) => html`<tr key=${o.name} data-output=${o.name}>
            <th scope="row">${o.name}</th>
            <td>${o.datatype}</td>
            <td>[${o.shape.join(', ')}]</td>
            <td><code>${JSON.stringify(o.data.slice(0, 32).map((v) => (typeof v === 'number' ? +v.toPrecision(5) : v)))}${o.data.length > 32 ? ' …' : ''}</code></td>
          </tr>`,
        )}
      </tbody>
    </table>
  </div>`;
}

/**
 * A form for one tensor model, made from its KServe v2 metadata (`GET /v2/models/{name}`): a field per value for a
 * small input, a JSON area for a large one; answered by `POST /v2/models/{name}/infer`.
 */
export function TensorForm({ model }) {
  const [meta, setMeta] = useState(null);
  const [values, setValues] = useState({});
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const path = `/v2/models/${encodeURIComponent(model)}`;
  useEffect(() => {
    setMeta(null);
    setResult(null);
    setError(null);
    api(path).then(
      (m) => {
        setMeta(m);
        setValues(Object.fromEntries(m.inputs.map((i) => [i.name, initialValue(i)])));
      },
      (err) => setError(err.message),
    );
  }, [model]);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    setResult(null);
    let inputs;
    try {
      inputs = meta.inputs.map((i) => tensorOf(i, values[i.name]));
    } catch (err) {
      setError(err.message);
      return;
    }
    setBusy(true);
    try {
      setResult(await api(`${path}/infer`, { method: 'POST', body: { inputs } }));
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<form class="playground-form" aria-labelledby="tensor-title" onSubmit=${submit}>
    <h3 id="tensor-title">Run ${model}</h3>
    ${!meta && !error && html`<p class="loading">Reading the model's inputs…</p>`}
    ${meta?.inputs.map(
      (i) => html`<${InputField}
        key=${i.name}
        input=${i}
        value=${values[i.name]}
        onChange=${(v) => setValues((now) => ({ ...now, [i.name]: v }))}
      />`,
    )}
    ${meta && html`<button type="submit" disabled=${busy}>Run</button>`}
    <p class="status" role="status">${busy ? 'Running…' : result ? 'Done.' : ''}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${result && html`<${Outputs} outputs=${result.outputs} />`}
  </form>`;
}
