import { html } from 'htm/preact';
import { useState } from 'preact/hooks';

/** A model's traffic as `GET /admin/traffic` reports it: each variant's share, as the router applies it now. */
export function trafficSummary(status) {
  if (!status) return 'default version only';
  const parts = status.variants.map((v) => {
    const who = `${v.model}${v.version !== undefined ? `@${v.version}` : ''}`;
    return v.role === 'shadow'
      ? `${who} shadow`
      : `${who} ${v.weight !== undefined ? `${Math.round(v.weight * 100)}%` : ''}`;
  });
  return `${status.type}: ${parts.join(' · ')}`;
}

// The weights the form starts from: the policy's own where it has weights, else all to the default version.
function startingWeights(model, policy) {
  return Object.fromEntries(
    model.versions.map((v) => {
      const variant =
        policy?.type === 'weights' ? policy.variants.find((x) => x.version === v.version && !x.model) : undefined;
      const weight = variant ? variant.weight : policy ? 0 : v.version === model.defaultVersion ? 100 : 0;
      return [v.version, String(weight)];
    }),
  );
}

/**
 * The traffic split of one model with several versions (an A/B test): a weight per version, sent as a `weights`
 * policy to `PUT /admin/traffic/{model}` (the traffic-policy plugin's admin route), or removed with `DELETE`.
 */
export function TrafficSplit({ model, policy, status, run }) {
  const [weights, setWeights] = useState(() => startingWeights(model, policy));
  const [problem, setProblem] = useState(null);
  const path = `/admin/traffic/${encodeURIComponent(model.name)}`;
  if (model.versions.length < 2 && !policy) return html`<p class="traffic-now">${trafficSummary(status)}</p>`;
  const submit = (e) => {
    e.preventDefault();
    const variants = Object.entries(weights)
      .map(([version, w]) => ({ version, weight: Number(w) }))
      .filter((v) => v.weight > 0);
    if (variants.length === 0) {
      setProblem('give at least one version a weight above 0');
      return;
    }
    setProblem(null);
    const total = variants.reduce((a, v) => a + v.weight, 0);
    const shares = variants.map((v) => `${v.version} ${Math.round((v.weight / total) * 100)}%`).join(', ');
    run(`Split the traffic of "${model.name}": ${shares}?`, path, {
      method: 'PUT',
      body: { type: 'weights', variants },
    });
  };
  return html`<form class="traffic" aria-label=${`Traffic split of ${model.name}`} onSubmit=${submit}>
    <p class="traffic-now" data-traffic=${model.name}>${trafficSummary(status)}</p>
    ${model.versions.map(
      (v) => html`<label key=${v.version}>
        Weight of ${model.name} version ${v.version}
        <input
          type="number"
          min="0"
          step="any"
          required
          value=${weights[v.version]}
          onInput=${(e) => setWeights((now) => ({ ...now, [v.version]: e.currentTarget.value }))}
        />
      </label>`,
    )}
    <button type="submit">Set split</button>
    ${
      policy &&
      html`<button
        type="button"
        class="danger"
        onClick=${() => run(`Remove the traffic policy of "${model.name}"? Its default version takes every request.`, path, { method: 'DELETE' })}
      >
        Remove split
      </button>`
    }
    ${problem && html`<p class="error" role="alert">${problem}</p>`}
  </form>`;
}
