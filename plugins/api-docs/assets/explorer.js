// Starts Swagger UI on this server's own document. Where reading the document needs a key (plugin.api-docs.public
// false), asks for one first and hands it to Swagger UI's auth dialog too, so "Try it out" sends it.

const DOCUMENT = '/openapi.json';

function start(key) {
  const withKey = (request) => {
    if (key && request.url.endsWith(DOCUMENT)) request.headers.Authorization = `Bearer ${key}`;
    return request;
  };
  const ui = SwaggerUIBundle({
    url: DOCUMENT,
    dom_id: '#swagger-ui',
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout',
    requestInterceptor: withKey,
    onComplete: () => {
      if (key) ui.preauthorizeApiKey('apiKey', key);
    },
  });
  window.ui = ui;
}

async function open() {
  const answer = await fetch(DOCUMENT, { method: 'GET' });
  if (answer.status !== 401) return start();
  const form = document.getElementById('key-form');
  const input = document.getElementById('key-input');
  const error = document.getElementById('key-error');
  form.hidden = false;
  input.focus();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    const check = await fetch(DOCUMENT, { headers: { Authorization: `Bearer ${key}` } });
    if (!check.ok) {
      const body = await check.json().catch(() => ({}));
      error.textContent = body.error?.message ?? `the server answered ${check.status}`;
      return;
    }
    form.hidden = true;
    start(key);
  });
}

open();
