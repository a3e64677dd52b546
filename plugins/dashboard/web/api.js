// The page's one way to the server: fetch with the session's CSRF token on writes, and /ws for everything live.

let csrfToken = null;

/** Remembers the CSRF token signing in returned; every write sends it. */
export function setCsrfToken(token) {
  csrfToken = token ?? null;
}

/** An error the server answered, with its message as the server wrote it. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function send(path, { method = 'GET', body, headers = {}, signal }) {
  const sent = { ...headers };
  if (body !== undefined) sent['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) sent['x-csrf-token'] = csrfToken;
  return fetch(path, {
    method,
    headers: sent,
    credentials: 'same-origin',
    signal,
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

async function failure(res) {
  const text = await res.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  const error = data && typeof data === 'object' ? data.error : undefined;
  return new ApiError(res.status, error?.code, error?.message ?? `${res.status} ${res.statusText}`);
}

/**
 * POSTs `body` to a route that answers with server-sent events and hands each event's parsed `data` to `onData` as
 * it arrives; resolves when the stream ends (`data: [DONE]` or the end of the body). `signal` stops it.
 */
export async function postStream(path, body, onData, signal) {
  const res = await send(path, { method: 'POST', body, headers: { accept: 'text/event-stream' }, signal });
  if (!res.ok) throw await failure(res);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    // Events end with a blank line; a partial one waits for the next chunk.
    const events = buffered.split(/\r?\n\r?\n/);
    buffered = events.pop();
    for (const event of events) {
      const data = event
        .split(/\r?\n/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      if (data === '[DONE]') return;
      if (data) onData(JSON.parse(data));
    }
  }
}

/** Calls a JSON route; resolves with the parsed body, rejects with an ApiError carrying the server's message. */
export async function api(path, { method = 'GET', body, headers = {} } = {}) {
  const res = await send(path, { method, body, headers });
  if (!res.ok) throw await failure(res);
  const text = await res.text();
  let data = text;
  try {
    data = JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return data;
}

/**
 * Opens /ws (the session cookie authenticates it), subscribes to `topics` and hands each event to `onEvent`.
 * A dropped connection is opened again after a growing pause; nothing is polled. Returns a function that closes it.
 */
export function connectLive(topics, onEvent, onStatus) {
  let socket;
  let closed = false;
  let delay = 500;
  let timer;
  const open = () => {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    socket = new WebSocket(`${scheme}://${location.host}/ws`);
    socket.onmessage = (message) => {
      const msg = JSON.parse(message.data);
      // Only the topics this server offers now (a disabled plugin's topic is gone): one unknown name fails them all.
      if (msg.type === 'welcome') {
        delay = 500;
        socket.send(JSON.stringify({ type: 'subscribe', topics: topics.filter((t) => msg.topics.includes(t)) }));
      } else if (msg.type === 'subscribed') onStatus('live');
      else if (msg.type === 'event') onEvent(msg.topic, msg.event, msg.data);
    };
    socket.onclose = () => {
      if (closed) return;
      onStatus('reconnecting');
      timer = setTimeout(open, delay);
      delay = Math.min(delay * 2, 30_000);
    };
  };
  open();
  return () => {
    closed = true;
    clearTimeout(timer);
    socket?.close();
  };
}
