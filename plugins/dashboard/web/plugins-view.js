import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';
import { ConfigForm } from './config-form.js';
import { ActionStatus, useAdminAction } from './models-view.js';

/** Every plugin and its state; an admin can enable, disable and reload. Listed again when a `plugins` event comes. */
export function PluginsView({ admin, changed }) {
  const [plugins, setPlugins] = useState(null);
  const [error, setError] = useState(null);
  const refresh = () =>
    api('/dashboard/api/plugins').then(
      (r) => setPlugins(r.plugins),
      (err) => setError(err.message),
    );
  const [status, run] = useAdminAction(refresh);
  const [configuring, setConfiguring] = useState(null);
  useEffect(() => {
    refresh();
  }, [changed]);
  const act = (p, action) =>
    run(
      `${action[0].toUpperCase()}${action.slice(1)} plugin "${p.id}"?`,
      `/admin/plugins/${encodeURIComponent(p.id)}/${action}`,
      {
        method: 'POST',
      },
    );
  return html`<section aria-labelledby="plugins-title">
    <h2 id="plugins-title">Plugins</h2>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <${ActionStatus} status=${status} />
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">Plugins</caption>
        <thead>
          <tr>
            <th scope="col">Plugin</th>
            <th scope="col">Version</th>
            <th scope="col">State</th>
            <th scope="col">Provides</th>
            ${admin && html`<th scope="col">Actions</th>`}
          </tr>
        </thead>
        <tbody>
          ${(plugins ?? []).map(
            (p) => html`<tr key=${p.id} data-plugin=${p.id}>
              <th scope="row">${p.id}</th>
              <td>${p.version}</td>
              <td>
                <span class=${`state state-${p.state}`}>${p.state}</span>
                ${p.error && html`<p class="error">${p.error}</p>`}
              </td>
              <td class="provides">${p.provides.join(', ') || '–'}</td>
              ${
                admin &&
                html`<td class="actions">
                  ${
                    p.state === 'active'
                      ? html`<button type="button" onClick=${() => act(p, 'reload')}>Reload ${p.id}</button>
                          <button type="button" class="danger" onClick=${() => act(p, 'disable')}>Disable ${p.id}</button>`
                      : html`<button type="button" onClick=${() => act(p, 'enable')}>Enable ${p.id}</button>`
                  }
                  <button type="button" aria-expanded=${configuring === p.id} onClick=${() => setConfiguring(p.id)}>
                    Configure ${p.id}
                  </button>
                </td>`
              }
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
    ${admin && configuring && html`<${ConfigForm} key=${configuring} id=${configuring} run=${run} onClose=${() => setConfiguring(null)} />`}
  </section>`;
}
