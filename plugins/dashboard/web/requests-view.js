import { html } from 'htm/preact';
import { ms, time } from './format.js';

/** The latest answered requests this key may see (an admin sees all), as `/ws` brings them; no prompt text. */
export function RequestsView({ requests, alerts }) {
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
          </tr>
        </thead>
        <tbody>
          ${requests.map(
            (r) => html`<tr key=${r.requestId}>
              <td>${time(r.at)}</td>
              <td><code>${r.requestId}</code></td>
              <td>${r.method} ${r.route}</td>
              <td class=${r.status >= 400 ? 'bad' : ''}>${r.status}</td>
              <td>${ms(r.durationMs)}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>
  </section>`;
}
