import { html } from 'htm/preact';
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

// Series colours that keep 3:1 contrast against both themes' backgrounds, told apart by dash pattern as well.
const STROKES = ['#2563eb', '#c2410c', '#7c3aed', '#0f766e', '#be185d', '#a16207'];
const DASHES = [[], [6, 3], [2, 3], [10, 4, 2, 4], [4, 4], [1, 2]];

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/**
 * A time-series chart (uPlot) of `samples`: `series` are `{ label, value(sample) }`. The chart is made once and
 * given new data as samples arrive; its width follows its box (a ResizeObserver, not a timer).
 */
export function Chart({ title, samples, series, unit, format, theme }) {
  const box = useRef(null);
  const plot = useRef(null);
  const data = [samples.map((s) => s.t / 1000), ...series.map((line) => samples.map((s) => line.value(s) ?? null))];

  useEffect(() => {
    const el = box.current;
    const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--grid') }, ticks: { stroke: cssVar('--grid') } };
    const opts = {
      width: Math.max(240, el.clientWidth),
      height: 180,
      legend: { show: true },
      cursor: { drag: { x: false, y: false } },
      scales: { x: { time: true } },
      axes: [axis, { ...axis, size: 60, values: (_u, ticks) => ticks.map((v) => format(v)) }],
      series: [
        {},
        ...series.map((line, i) => ({
          label: line.label,
          stroke: STROKES[i % STROKES.length],
          dash: DASHES[i % DASHES.length],
          width: 2,
          value: (_u, v) => format(v),
        })),
      ],
    };
    plot.current = new uPlot(opts, data, el);
    const resize = new ResizeObserver(() =>
      plot.current?.setSize({ width: Math.max(240, el.clientWidth), height: 180 }),
    );
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [theme]);

  useEffect(() => {
    plot.current?.setData(data);
  });

  const last = samples.at(-1);
  const summary = last
    ? series.map((line) => `${line.label} ${format(line.value(last))}`).join(', ')
    : 'no samples yet';
  return html`<figure class="chart" data-points=${samples.length}>
    <figcaption>${title}${unit ? html` <span class="unit">(${unit})</span>` : ''}</figcaption>
    <div ref=${box} role="img" aria-label=${`${title}, latest: ${summary}`}></div>
  </figure>`;
}
