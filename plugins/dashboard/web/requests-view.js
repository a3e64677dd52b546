import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from './api.js';
import { ms, time } from './format.js';

const LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

// The admin's switch for prompt text (`plugin.dashboard.showPrompts`, a runtime config key): off unless turned on.
function PromptSwitch({ showPrompts, setShowPrompts }) {
  const [error, setError] = useState(null);
  const change = async (on) => {
    setError(null);
    // The box shows the choice at once and goes back if the server refuses it.
    setShowPrompts(on);
    try {
      await api('/admin/config', { method: 'PATCH', body: { 'plugin.dashboard.showPrompts': on } });
    } catch (err) {
      setShowPrompts(!on);
      setError(err.message);
    }
  };
  return html`<div class="prompt-switch">
    <label>
      <input type="checkbox" checked=${showPrompts} onChange=${(e) => change(e.currentTarget.checked)} />
      Show prompt text of new requests
    </label>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </div>`;
}

/** The lines the server logs, newest first, from the chosen level up. */
function LogTailView({ logs }) {
  const [level, setLevel] = useState('info');
  const shown = logs.filter((l) => LEVELS.indexOf(l.level) >= LEVELS.indexOf(level));
  return html`<section aria-labelledby="logs-title">
    <h3 id="logs-title">Log tail</h3>
    <label class="inline-fields">
      Lowest level shown
      <select value=${level} onChange=${(e) => setLevel(e.currentTarget.value)}>
        ${LEVELS.map((l) => html`<option value=${l}>${l}</option>`)}
      </select>
    </label>
    ${
      shown.length === 0
        ? html`<p class="note">No log line at this level yet.</p>`
        : html`<ol class="log-tail" aria-label="Log lines, newest first" tabindex="0">
            ${shown.map(
              (l, i) => html`<li key=${`${l.time}-${i}`} class=${`log-${l.level}`} data-level=${l.level}>
                <span class="log-time">${time(Date.parse(l.time))}</span>
                <span class="log-level">${l.level}</span>
                ${l.component && html`<span class="log-component">${l.component}</span>`}
                ${l.model && html`<span class="log-component">${l.model}</span>`}
                <span class="log-msg">${l.msg}${l.error ? `: ${l.error}` : ''}</span>
                ${l.requestId && html`<code>${l.requestId}</code>`}
              </li>`,
            )}
          </ol>`
    }
  </section>`;
}

/**
 * The latest answered requests this key may see (an admin sees all), as `/ws` brings them, the firing alerts and the
 * log tail. Prompt text appears only while an admin has turned it on.
 */
export function RequestsView({ requests, alerts, logs, admin, showPrompts, setShowPrompts }) {
  const withPrompts = requests.some((r) => r.prompt !== undefined);
  return html`<section aria-labelledby="requests-title">
    <h2 id="requests-title">Requests and alerts</h2>
    <h3>Alerts</h3>
    ${
      alerts.length === 0
        ? html`<p class="note">No alert is firing.</p>`
        : html`<ul class="alerts">
            ${alerts.map((a) => html`<li class=${`alert-${a.severity}`}><strong>${a.name}</strong> (${a.severity}): ${a.summary}</li>`)}
          </ul>`
    }
    <h3>Recent requests</h3>
    ${admin && html`<${PromptSwitch} showPrompts=${showPrompts} setShowPrompts=${setShowPrompts} />`}
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">Recent requests, newest first</caption>
        <thead>
          <tr>
            <th scope="col">Time</th>
            <th scope="col">Request id</th>
            <th scope="col">Route</th>
            <th scope="col">Status</th>
            <th scope="col">Latency</th>
            ${withPrompts && html`<th scope="col">Prompt</th>`}
          </tr>
        </thead>
        <tbody>
          ${requests.map(
            (r) => html`<tr key=${r.requestId} data-request=${r.requestId}>
              <td>${time(r.at)}</td>
              <td><code>${r.requestId}</code></td>
              <td>${r.method} ${r.route}</td>
              <td class=${r.status >= 400 ? 'bad' : ''}>${r.status}</td>
              <td>${ms(r.durationMs)}</td>
              ${withPrompts && html`<td class="prompt">${r.prompt ?? ''}</td>`}
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
    <${LogTailView} logs=${logs} />
  </section>`;
}
