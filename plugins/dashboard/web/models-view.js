import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { bytes } from './format.js';
import { TrafficSplit } from './traffic-split.js';

/** Runs an admin call after the user confirms it; the server's own message is shown on failure, word for word. */
export function useAdminAction(onDone) {
  const [status, setStatus] = useState(null);
  const run = async (question, path, init) => {
    if (!window.confirm(question)) return;
    setStatus({ busy: true, text: 'Working…' });
    try {
      await api(path, init);
      setStatus({ ok: true, text: 'Done.' });
      onDone?.();
    } catch (err) {
      setStatus({ error: true, text: err.message });
    }
  };
  return [status, run];
}

export function ActionStatus({ status }) {
  if (!status) return html`<p class="status" role="status"></p>`;
  if (status.error) return html`<p class="error" role="alert">${status.text}</p>`;
  return html`<p class="status" role="status">${status.text}</p>`;
}

function SwapForm({ model, run }) {
  const [source, setSource] = useState('');
  const id = `swap-${model.name}`;
  return html`<form
    class="inline"
    onSubmit=${(e) => {
      e.preventDefault();
      run(`Swap model "${model.name}" to ${source}?`, `/admin/models/${encodeURIComponent(model.name)}/swap`, {
        method: 'POST',
        body: { source },
      });
    }}
  >
    <label for=${id}>New source for ${model.name}</label>
    <input id=${id} required value=${source} onInput=${(e) => setSource(e.currentTarget.value)} />
    <button type="submit">Swap</button>
  </form>`;
}

function LoadForm({ run }) {
  const [name, setName] = useState('');
  const [source, setSource] = useState('');
  return html`<form
    class="load"
    aria-labelledby="load-title"
    onSubmit=${(e) => {
      e.preventDefault();
      run(`Load model "${name}" from ${source}?`, '/admin/models', { method: 'POST', body: { name, source } });
    }}
  >
    <h3 id="load-title">Load a model</h3>
    <label for="load-name">Name</label>
    <input id="load-name" required value=${name} onInput=${(e) => setName(e.currentTarget.value)} />
    <label for="load-source">Source (file, folder or URI)</label>
    <input id="load-source" required value=${source} onInput=${(e) => setSource(e.currentTarget.value)} />
    <button type="submit">Load</button>
  </form>`;
}

/**
 * Every model with its versions and the size of its files; an admin can load, swap and unload. Listed again when a
 * `models` event comes.
 */
export function ModelsView({ admin, changed }) {
  const [models, setModels] = useState(null);
  const [error, setError] = useState(null);
  // Traffic policies are the traffic-policy plugin's, for admins; without that plugin the column is left out.
  const [traffic, setTraffic] = useState(null);
  const refresh = () => {
    api('/dashboard/api/models').then(
      (r) => setModels(r.models),
      (err) => setError(err.message),
    );
    if (admin) api('/admin/traffic').then(setTraffic, () => setTraffic(null));
  };
  const [status, run] = useAdminAction(refresh);
  useEffect(() => {
    refresh();
  }, [changed]);
  return html`<section aria-labelledby="models-title">
    <h2 id="models-title">Models</h2>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <${ActionStatus} status=${status} />
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">Models served</caption>
        <thead>
          <tr>
            <th scope="col">Model</th>
            <th scope="col">Kind</th>
            <th scope="col">State</th>
            <th scope="col">Versions</th>
            <th scope="col">Backend</th>
            <th scope="col">Replicas</th>
            <th scope="col">Weights on disk</th>
            ${traffic && html`<th scope="col">Traffic</th>`}
            ${admin && html`<th scope="col">Actions</th>`}
          </tr>
        </thead>
        <tbody>
          ${(models ?? []).map(
            (m) => html`<tr key=${`${m.name}/${m.kind}`} data-model=${m.name} data-kind=${m.kind}>
              <th scope="row">${m.name}</th>
              <td>${m.kind}</td>
              <td><span class=${`state state-${m.state}`}>${m.state}</span></td>
              <td>
                ${m.versions.map(
                  (v) =>
                    html`<span class="version" title=${v.reason ?? ''}
                      >${v.version}${v.version === m.defaultVersion ? ' (default)' : ''}: ${v.state}</span
                    >`,
                )}
              </td>
              <td>${m.backend ?? '–'}</td>
              <td>${m.replicas}</td>
              <td class="weights" data-bytes=${m.fileBytes ?? ''}>
                ${bytes(m.fileBytes)}${m.fileBytes !== undefined && m.replicas > 1 ? ` × ${m.replicas} replicas` : ''}
              </td>
              ${
                traffic &&
                html`<td class="traffic-cell">
                  <${TrafficSplit}
                    key=${JSON.stringify(traffic.policies[m.name] ?? null)}
                    model=${m}
                    policy=${traffic.policies[m.name]}
                    status=${traffic.models[m.name]}
                    run=${run}
                  />
                </td>`
              }
              ${
                admin &&
                html`<td class="actions">
                  <${SwapForm} model=${m} run=${run} />
                  <button
                    type="button"
                    class="danger"
                    onClick=${() =>
                      run(
                        `Unload model "${m.name}"? Requests to it will get 404.`,
                        `/admin/models/${encodeURIComponent(m.name)}`,
                        {
                          method: 'DELETE',
                        },
                      )}
                  >
                    Unload ${m.name}
                  </button>
                </td>`
              }
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${models && models.length === 0 && html`<p class="note">No model is loaded.</p>`}
    <p class="note">
      Weights on disk: the size of the serving version's files (graph and weights), which each replica loads once. The
      process's memory is on the overview.
    </p>
    ${admin && html`<${LoadForm} run=${run} />`}
  </section>`;
}
