// Time-series charts (uPlot, vendored) with a text summary and a data table for each, so the
// numbers are there for keyboard and screen-reader users, and for anyone who wants them exact.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { h } from "./dom.js";
import { dateTime } from "./format.js";

const COLORS = ["--chart-1", "--chart-2", "--chart-3"];

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

function withAlpha(color, alpha) {
  // #rrggbb -> rgba(); other notations are returned unchanged.
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  if (!m) return color;
  const [r, g, b] = m.slice(1).map((x) => parseInt(x, 16));
  return `rgba(${r}, ${g}, ${b}, ${alpha})`;
}

/**
 * A chart of one or more series over the same time buckets.
 *   title    shown as the figure caption
 *   times    bucket starts, unix seconds
 *   series   [{label, values}]
 *   format   value -> text (axis, legend, table)
 *   summary  text under the title, e.g. "12 requests in total"
 *   bars     draw bars instead of lines
 * Returns {element, destroy()}; the plot is drawn once the element is in the page and has a width.
 */
export function timeChart({ id, title, times, series, format = String, summary = "", bars = false }) {
  const plot = h("div", { class: "plot", "aria-hidden": "true" });
  const rows = times.map((t, i) =>
    h("tr", {}, h("td", {}, dateTime(t)), series.map((s) => h("td", { class: "num" }, s.values[i] == null ? "–" : format(s.values[i])))),
  );
  const element = h(
    "figure",
    { class: "chart", id, "aria-label": title },
    h("figcaption", {}, title, " ", h("span", { class: "summary" }, summary)),
    plot,
    h(
      "details",
      {},
      h("summary", {}, "Data table"),
      h(
        "table",
        {},
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Time"), series.map((s) => h("th", { scope: "col", class: "num" }, s.label)))),
        h("tbody", {}, rows),
      ),
    ),
  );

  let chart = null;
  const observer = new ResizeObserver(() => {
    const width = Math.floor(plot.clientWidth);
    if (!width) return;
    if (chart) chart.setSize({ width, height: 200 });
    else chart = draw(plot, width, { times, series, format, bars });
  });
  observer.observe(plot);
  return {
    element,
    destroy() {
      observer.disconnect();
      if (chart) chart.destroy();
    },
  };
}

function draw(target, width, { times, series, format, bars }) {
  const axis = cssVar("--chart-axis");
  const grid = cssVar("--chart-grid");
  const paths = bars ? uPlot.paths.bars({ size: [0.7, 40] }) : undefined;
  const opts = {
    width,
    height: 200,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    series: [
      { value: (u, t) => (t == null ? "–" : dateTime(t)) },
      ...series.map((s, i) => {
        const color = cssVar(COLORS[i % COLORS.length]);
        return {
          label: s.label,
          stroke: color,
          width: 2,
          fill: bars ? withAlpha(color, 0.55) : withAlpha(color, 0.1),
          paths,
          points: { show: false },
          value: (u, v) => (v == null ? "–" : format(v)),
        };
      }),
    ],
    axes: [
      { stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid } },
      { stroke: axis, grid: { stroke: grid }, ticks: { stroke: grid }, size: 70, values: (u, vals) => vals.map(format) },
    ],
    cursor: { drag: { x: false, y: false } },
  };
  return new uPlot(opts, [times, ...series.map((s) => s.values)], target);
}

/** Bucket start times and width for "hour", "day" or "month" (30 days), aligned to the bucket width. */
export const RANGES = {
  hour: { label: "Last hour", increment: 60, count: 60 },
  day: { label: "Last day", increment: 900, count: 96 },
  month: { label: "Last 30 days", increment: 86400, count: 30 },
};

export function reportWindow(rangeName, nowSeconds = Date.now() / 1000) {
  const range = RANGES[rangeName] || RANGES.day;
  const end = Math.ceil((nowSeconds + 1) / range.increment) * range.increment;
  return { start: end - range.count * range.increment, end, increment: range.increment };
}

/** The series every usage view draws, from a POST /api/reporting/events answer. */
export function reportSeries(report) {
  const points = report.dataPoints;
  const pick = (name) => points.map((p) => p[name]);
  const requests = pick("numberOfRequests");
  const errors = points.map((p) => p.numberOfRequests - p.successCount);
  return {
    times: pick("timeStamp"),
    requests,
    errors,
    spend: pick("costInUsd"),
    prompt: pick("promptTokenCount"),
    completion: pick("completionTokenCount"),
    // rates and latencies of an empty bucket are unknown, not 0: null leaves a gap in the line
    errorRate: points.map((p) => (p.numberOfRequests ? (p.numberOfRequests - p.successCount) / p.numberOfRequests : null)),
    p50: points.map((p) => (p.numberOfRequests ? p.latencyInMsMedian : null)),
    p99: points.map((p) => (p.numberOfRequests ? p.latencyInMs99th : null)),
  };
}

export function sum(values) {
  return values.reduce((a, b) => a + b, 0);
}
