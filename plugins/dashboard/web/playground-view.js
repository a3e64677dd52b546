import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, postStream } from './api.js';
import { TensorForm } from './tensor-form.js';

const KINDS = [
  { kind: 'llm', label: 'Chat (LLMs)' },
  { kind: 'embedding', label: 'Embeddings' },
  { kind: 'tensor', label: 'Tensor models' },
];

/** A chat with one LLM, its reply streamed token by token from `/v1/chat/completions` (server-sent events). */
function Chat({ model }) {
  const [messages, setMessages] = useState([]);
  const [text, setText] = useState('');
  const [maxTokens, setMaxTokens] = useState('64');
  const [temperature, setTemperature] = useState('0.8');
  const [error, setError] = useState(null);
  const [streaming, setStreaming] = useState(null);
  useEffect(() => setMessages([]), [model]);
  const send = async (e) => {
    e.preventDefault();
    const history = [...messages, { role: 'user', content: text }];
    setMessages([...history, { role: 'assistant', content: '' }]);
    setText('');
    setError(null);
    const controller = new AbortController();
    setStreaming(controller);
    const append = (delta) =>
      setMessages((now) => [...now.slice(0, -1), { role: 'assistant', content: now.at(-1).content + delta }]);
    try {
      await postStream(
        '/v1/chat/completions',
        { model, messages: history, stream: true, max_tokens: Number(maxTokens), temperature: Number(temperature) },
        (chunk) => {
          if (chunk.error) throw new ApiError(0, chunk.error.code, chunk.error.message);
          const delta = chunk.choices?.[0]?.delta?.content;
          if (delta) append(delta);
        },
        controller.signal,
      );
    } catch (err) {
      if (err.name !== 'AbortError') setError(err.message);
    } finally {
      setStreaming(null);
    }
  };
  return html`<form class="playground-form" aria-labelledby="chat-title" onSubmit=${send}>
    <h3 id="chat-title">Chat with ${model}</h3>
    <ol class="chat-log" id="chat-log" aria-label="Conversation" aria-busy=${streaming ? 'true' : 'false'}>
      ${messages.map(
        (m, i) => html`<li key=${i} class=${`chat-${m.role}`}>
          <span class="chat-role">${m.role === 'user' ? 'You' : model}</span>
          <p>${m.content}</p>
        </li>`,
      )}
    </ol>
    <div class="field">
      <label for="chat-text">Message</label>
      <textarea id="chat-text" rows="3" required value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
    </div>
    <div class="inline-fields">
      <label
        >Max tokens
        <input type="number" min="1" max="4096" required value=${maxTokens} onInput=${(e) => setMaxTokens(e.currentTarget.value)}
      /></label>
      <label
        >Temperature
        <input
          type="number"
          min="0"
          max="2"
          step="0.1"
          required
          value=${temperature}
          onInput=${(e) => setTemperature(e.currentTarget.value)}
      /></label>
    </div>
    <div class="buttons">
      <button type="submit" disabled=${!!streaming}>Send</button>
      ${streaming && html`<button type="button" onClick=${() => streaming.abort()}>Stop</button>`}
      ${messages.length > 0 && !streaming && html`<button type="button" onClick=${() => setMessages([])}>New chat</button>`}
    </div>
    <p class="status" role="status">${streaming ? 'Writing…' : messages.length > 0 ? 'Done.' : ''}</p>
    ${error && html`<p class="error" role="alert">${error}</p>`}
  </form>`;
}

/** Embeds a text with an embedding model (`/v1/embeddings`) and shows the vector's size and its first values. */
function Embed({ model }) {
  const [text, setText] = useState('');
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    try {
      const r = await api('/v1/embeddings', { method: 'POST', body: { model, input: text } });
      setResult(r.data[0].embedding);
    } catch (err) {
      setResult(null);
      setError(err.message);
    }
  };
  const norm = result && Math.sqrt(result.reduce((a, v) => a + v * v, 0));
  return html`<form class="playground-form" aria-labelledby="embed-title" onSubmit=${submit}>
    <h3 id="embed-title">Embed with ${model}</h3>
    <div class="field">
      <label for="embed-text">Text</label>
      <textarea id="embed-text" rows="3" required value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
    </div>
    <button type="submit">Embed</button>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${
      result &&
      html`<p class="status" role="status" id="embed-result">
        ${result.length} dimensions, norm ${norm.toFixed(4)}:
        <code>${result
          .slice(0, 8)
          .map((v) => v.toFixed(4))
          .join(', ')}${result.length > 8 ? ', …' : ''}</code>
      </p>`
    }
  </form>`;
}

/** Try any served model: chat with an LLM, embed a text, or run a tensor model from a form made of its inputs. */
export function PlaygroundView({ changed }) {
  const [models, setModels] = useState(null);
  const [error, setError] = useState(null);
  const [chosen, setChosen] = useState('');
  useEffect(() => {
    api('/dashboard/api/models').then(
      (r) => setModels(r.models.filter((m) => m.state !== 'unavailable' && m.state !== 'failed')),
      (err) => setError(err.message),
    );
  }, [changed]);
  const model = models?.find((m) => `${m.kind}:${m.name}` === chosen);
  return html`<section aria-labelledby="playground-title">
    <h2 id="playground-title">Playground</h2>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    <div class="field">
      <label for="playground-model">Model</label>
      <select id="playground-model" value=${chosen} onChange=${(e) => setChosen(e.currentTarget.value)}>
        <option value="">Choose a model…</option>
        ${KINDS.map(({ kind, label }) => {
          const some = (models ?? []).filter((m) => m.kind === kind);
          return (
            some.length > 0 &&
            html`<optgroup label=${label}>
              ${some.map((m) => html`<option value=${`${m.kind}:${m.name}`}>${m.name}</option>`)}
            </optgroup>`
          );
        })}
      </select>
    </div>
    ${models && models.length === 0 && html`<p class="note">No model is served; load one on the Models view.</p>`}
    ${model?.kind === 'llm' && html`<${Chat} model=${model.name} />`}
    ${model?.kind === 'embedding' && html`<${Embed} model=${model.name} />`}
    ${model?.kind === 'tensor' && html`<${TensorForm} model=${model.name} />`}
  </section>`;
}
