import { html } from 'htm/preact';
import { useState } from 'preact/hooks';
import { api } from './api.js';

/** The API key (or token) goes to the server once, in a header; what comes back is a session cookie the page cannot read. */
export function SignInView({ onSignedIn }) {
  const [key, setKey] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const session = await api('/dashboard/api/session', {
        method: 'POST',
        headers: { authorization: `Bearer ${key.trim()}` },
      });
      setKey('');
      onSignedIn(session);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  return html`<main id="main" class="sign-in">
    <h1>Nucleus</h1>
    <form onSubmit=${submit} aria-labelledby="sign-in-title">
      <h2 id="sign-in-title">Sign in</h2>
      <p>
        Use an API key of this server, or a token (JWT) from its identity provider. A user key shows the live views; an
        admin key also shows the controls.
      </p>
      <label for="api-key">API key</label>
      <input
        id="api-key"
        type="password"
        autocomplete="current-password"
        required
        value=${key}
        onInput=${(e) => setKey(e.currentTarget.value)}
      />
      <button type="submit" disabled=${busy}>Sign in</button>
      ${error && html`<p role="alert" class="error">${error}</p>`}
    </form>
  </main>`;
}
