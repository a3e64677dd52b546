import { html, render } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, connectLive, setCsrfToken } from './api.js';
import { ModelsView } from './models-view.js';
import { OverviewView } from './overview-view.js';
import { PlaygroundView } from './playground-view.js';
import { PluginsView } from './plugins-view.js';
import { RequestsView } from './requests-view.js';
import { SignInView } from './sign-in-view.js';

const VIEWS = [
  { id: 'overview', label: 'Overview' },
  { id: 'models', label: 'Models' },
  { id: 'plugins', label: 'Plugins' },
  { id: 'requests', label: 'Requests and alerts' },
  { id: 'playground', label: 'Playground' },
];
const MAX_REQUESTS = 100;
const MAX_LOG_LINES = 200;
// Live log lines are applied in groups at most this often: a busy server's lines would otherwise re-render the page
// once each. Recent requests come grouped by the server already (the `dashboard-requests` topic).
const LOG_GROUP_MS = 250;

/** A function that takes items one by one and hands them to `apply` in arrival order, at most once every `ms`. */
function grouped(apply, ms) {
  let items = [];
  let timer;
  const push = (item) => {
    items.push(item);
    timer ??= setTimeout(() => {
      timer = undefined;
      const taken = items;
      items = [];
      apply(taken);
    }, ms);
  };
  push.cancel = () => clearTimeout(timer);
  return push;
}

function viewFromHash() {
  const id = location.hash.replace('#', '');
  return VIEWS.some((v) => v.id === id) ? id : 'overview';
}

// The theme follows the OS unless the user picked one; the choice is kept in this browser only.
function applyTheme(theme) {
  if (theme === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = theme;
}

function ThemeSwitch({ theme, setTheme }) {
  return html`<label class="theme">
    Theme
    <select value=${theme} onChange=${(e) => setTheme(e.currentTarget.value)}>
      <option value="system">System</option>
      <option value="light">Light</option>
      <option value="dark">Dark</option>
    </select>
  </label>`;
}

function Dashboard({ session, onSignOut, theme, setTheme }) {
  const [view, setView] = useState(viewFromHash);
  const [samples, setSamples] = useState([]);
  const [live, setLive] = useState('connecting');
  const [modelsChanged, setModelsChanged] = useState(0);
  const [pluginsChanged, setPluginsChanged] = useState(0);
  const [requests, setRequests] = useState([]);
  const [alerts, setAlerts] = useState([]);
  const [logs, setLogs] = useState([]);
  const [showPrompts, setShowPrompts] = useState(false);
  const admin = session.role === 'admin' && session.mode === 'signed-in';

  useEffect(() => {
    const onHash = () => setView(viewFromHash());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);

  useEffect(() => {
    let cutoff = 0;
    api('/dashboard/api/history').then(
      (r) => {
        cutoff = r.historyS * 1000;
        setSamples((now) => [...r.samples.filter((s) => !now.some((n) => n.t === s.t)), ...now]);
      },
      () => {},
    );
    // The log tail's recent past is for admins; every page gets new lines live (a user's only of its own requests).
    if (admin)
      api('/dashboard/api/logs').then(
        (r) => {
          setLogs((now) => [...now, ...r.lines.reverse()].slice(0, MAX_LOG_LINES));
          setShowPrompts(r.showPrompts);
        },
        () => {},
      );
    const topics = ['dashboard', 'models', 'plugins', 'dashboard-requests', 'alerts', 'logs'];
    const addLogs = grouped(
      (lines) => setLogs((now) => [...lines.reverse(), ...now].slice(0, MAX_LOG_LINES)),
      LOG_GROUP_MS,
    );
    const disconnect = connectLive(
      topics,
      (topic, event, data) => {
        if (topic === 'dashboard')
          setSamples((now) => [...now.filter((s) => s.t >= data.t - (cutoff || 900_000)), data]);
        else if (topic === 'models') setModelsChanged((n) => n + 1);
        else if (topic === 'plugins') setPluginsChanged((n) => n + 1);
        else if (topic === 'dashboard-requests')
          setRequests((now) => [...data.requests.slice().reverse(), ...now].slice(0, MAX_REQUESTS));
        else if (topic === 'logs') addLogs(data);
        else if (topic === 'alerts')
          setAlerts((now) =>
            event === 'alert.fired'
              ? [...now.filter((a) => a.name !== data.name), data]
              : now.filter((a) => a.name !== data.name),
          );
      },
      setLive,
    );
    return () => {
      addLogs.cancel();
      disconnect();
    };
  }, []);

  return html`<div class="layout">
    <a class="skip" href="#main">Skip to content</a>
    <header>
      <h1>Nucleus</h1>
      <nav aria-label="Views">
        <ul>
          ${VIEWS.map(
            (v) => html`<li>
              <a href=${`#${v.id}`} aria-current=${view === v.id ? 'page' : undefined}>${v.label}</a>
            </li>`,
          )}
        </ul>
      </nav>
      <div class="session">
        <span class="live" role="status">${live === 'live' ? 'Live' : live === 'connecting' ? 'Connecting…' : 'Reconnecting…'}</span>
        <${ThemeSwitch} theme=${theme} setTheme=${setTheme} />
        ${
          session.mode === 'signed-in'
            ? html`<span class="who">${session.name} (${session.role})</span>
                <button type="button" onClick=${onSignOut}>Sign out</button>`
            : ''
        }
      </div>
    </header>
    ${session.note && html`<p class="banner" role="note">Read-only: ${session.note}</p>`}
    <main id="main" tabindex="-1">
      ${view === 'overview' && html`<${OverviewView} samples=${samples} theme=${theme} />`}
      ${view === 'models' && html`<${ModelsView} admin=${admin} changed=${modelsChanged} />`}
      ${view === 'plugins' && html`<${PluginsView} admin=${admin} changed=${pluginsChanged} />`}
      ${
        view === 'requests' &&
        html`<${RequestsView}
          requests=${requests}
          alerts=${alerts}
          logs=${logs}
          admin=${admin}
          showPrompts=${showPrompts}
          setShowPrompts=${setShowPrompts}
        />`
      }
      ${view === 'playground' && html`<${PlaygroundView} changed=${modelsChanged} />`}
    </main>
  </div>`;
}

function App() {
  const [session, setSession] = useState(undefined);
  const [error, setError] = useState(null);
  const [theme, setThemeState] = useState(() => localStorage.getItem('nucleus-theme') ?? 'system');
  const setTheme = (t) => {
    localStorage.setItem('nucleus-theme', t);
    setThemeState(t);
  };
  applyTheme(theme);

  const signedIn = (s) => {
    setCsrfToken(s.csrfToken);
    setSession(s);
  };
  useEffect(() => {
    api('/dashboard/api/session').then(signedIn, (err) => {
      if (err instanceof ApiError && err.status === 401) setSession(null);
      else setError(err.message);
    });
  }, []);
  const signOut = async () => {
    await api('/dashboard/api/session', { method: 'DELETE' }).catch(() => {});
    setCsrfToken(null);
    setSession(null);
  };

  if (error) return html`<main id="main"><p role="alert" class="error">${error}</p></main>`;
  if (session === undefined) return html`<main id="main"><p class="loading">Loading…</p></main>`;
  if (session === null) return html`<${SignInView} onSignedIn=${signedIn} />`;
  return html`<${Dashboard} session=${session} onSignOut=${signOut} theme=${theme} setTheme=${setTheme} />`;
}

// The shell's "Loading" line goes: render() adds to what the container holds rather than replacing it.
const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
