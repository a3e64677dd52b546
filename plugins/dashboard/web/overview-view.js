import { html } from 'htm/preact';
import { Chart } from './chart.js';
import { bytes, ms, number } from './format.js';

function Tile({ label, value, id }) {
  return html`<div class="tile" data-stat=${id}>
    <dt>${label}</dt>
    <dd>${value}</dd>
  </div>`;
}

const perS = (v) => `${number(v, 2)}/s`;

/** Live numbers and the last minutes of them: from the server's history, then one sample per `dashboard` event. */
export function OverviewView({ samples, theme }) {
  const last = samples.at(-1);
  const rejected = last ? last.rejectedPerS['503'] + last.rejectedPerS['408'] + last.rejectedPerS['429'] : null;
  const hasGpu = samples.some((s) => s.gpuUsedBytes !== undefined);
  return html`<section aria-labelledby="overview-title">
    <h2 id="overview-title">Overview</h2>
    ${
      samples.length === 0 &&
      html`<p class="note">No samples yet: they come with each stats snapshot (plugin.stats.snapshotIntervalMs), while the stats plugin is enabled.</p>`
    }
    <dl class="tiles">
      <${Tile} id="requestsPerS" label="Requests/s" value=${number(last?.requestsPerS, 2)} />
      <${Tile} id="tokensPerS" label="Tokens/s" value=${number(last?.tokensPerS, 1)} />
      <${Tile} id="p50" label="Latency p50" value=${ms(last?.latencyMs.p50)} />
      <${Tile} id="p95" label="Latency p95" value=${ms(last?.latencyMs.p95)} />
      <${Tile} id="p99" label="Latency p99" value=${ms(last?.latencyMs.p99)} />
      <${Tile} id="ttft" label="TTFT p95" value=${ms(last?.ttftMs.p95)} />
      <${Tile} id="queue" label="Queue depth" value=${number(last?.queueDepth, 0)} />
      <${Tile} id="rejected" label="Rejected/s" value=${rejected === null ? '–' : perS(rejected)} />
      <${Tile} id="errors" label="Errors/s" value=${last ? perS(last.errorsPerS) : '–'} />
      <${Tile} id="cpu" label="CPU" value=${last ? `${number(last.cpuPercent, 0)} %` : '–'} />
      <${Tile} id="memory" label="Memory (RSS)" value=${bytes(last?.rssBytes)} />
    </dl>
    <div class="charts">
      <${Chart}
        theme=${theme}
        title="Throughput"
        unit="per second"
        samples=${samples}
        format=${(v) => number(v, 1)}
        series=${[
          { label: 'requests/s', value: (s) => s.requestsPerS },
          { label: 'tokens/s', value: (s) => s.tokensPerS },
        ]}
      />
      <${Chart}
        theme=${theme}
        title="Latency and time to first token"
        unit="ms"
        samples=${samples}
        format=${(v) => ms(v)}
        series=${[
          { label: 'p50', value: (s) => s.latencyMs.p50 },
          { label: 'p95', value: (s) => s.latencyMs.p95 },
          { label: 'p99', value: (s) => s.latencyMs.p99 },
          { label: 'TTFT p50', value: (s) => s.ttftMs.p50 },
          { label: 'TTFT p95', value: (s) => s.ttftMs.p95 },
          { label: 'TTFT p99', value: (s) => s.ttftMs.p99 },
        ]}
      />
      <${Chart}
        theme=${theme}
        title="Queue"
        unit="requests"
        samples=${samples}
        format=${(v) => number(v, 0)}
        series=${[{ label: 'queued', value: (s) => s.queueDepth }, { label: 'in flight', value: (s) => s.inFlight }]}
      />
      <${Chart}
        theme=${theme}
        title="Rejections and errors"
        unit="per second"
        samples=${samples}
        format=${(v) => number(v, 2)}
        series=${[
          { label: '503 overloaded', value: (s) => s.rejectedPerS['503'] },
          { label: '408 timed out', value: (s) => s.rejectedPerS['408'] },
          { label: '429 rate-limited', value: (s) => s.rejectedPerS['429'] },
          { label: 'other 5xx', value: (s) => s.errorsPerS },
        ]}
      />
      <${Chart}
        theme=${theme}
        title="CPU"
        unit="% of one core"
        samples=${samples}
        format=${(v) => `${number(v, 0)} %`}
        series=${[{ label: 'CPU', value: (s) => s.cpuPercent }]}
      />
      <${Chart}
        theme=${theme}
        title="Memory"
        samples=${samples}
        format=${(v) => bytes(v)}
        series=${[
          { label: 'RSS', value: (s) => s.rssBytes },
          { label: 'JS heap', value: (s) => s.heapUsedBytes },
          ...(hasGpu ? [{ label: 'GPU', value: (s) => s.gpuUsedBytes }] : []),
        ]}
      />
    </div>
  </section>`;
}
