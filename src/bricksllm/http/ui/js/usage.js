// The usage view shared by the overview and a key's page: totals and charts of requests,
// spend, tokens, error rate and latency from POST /api/reporting/events.

import { api, paths } from "./api.js";
import { RANGES, reportSeries, reportWindow, sum, timeChart } from "./charts.js";
import { h, uid } from "./dom.js";
import { int, ms, percent, usd } from "./format.js";

/** A radio group choosing the time range; `onChange(name)` on a change. */
export function rangePicker(current, onChange) {
  const group = uid("range");
  return h(
    "fieldset",
    { class: "segmented" },
    h("legend", {}, "Time range"),
    Object.entries(RANGES).map(([name, r]) =>
      h(
        "label",
        {},
        h("input", { type: "radio", name: group, value: name, checked: name === current, onchange: () => onChange(name) }),
        h("span", {}, r.label),
      ),
    ),
  );
}

function tile(label, value, id) {
  return h("div", { class: "tile", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value));
}

/** Render the usage of `keyIds` (all keys when empty) over `range` into `container`.
 *  Returns a function that releases the charts. */
export async function renderUsage(container, { range, keyIds = [] }) {
  const window = reportWindow(range);
  const report = await api.post(paths.report, { ...window, keyIds });
  const s = reportSeries(report);
  const requests = sum(s.requests);
  const errors = sum(s.errors);
  const tokens = sum(s.prompt) + sum(s.completion);
  const tiles = h(
    "div",
    { class: "tiles" },
    tile("Requests", int(requests), "total-requests"),
    tile("Spend", usd(sum(s.spend)), "total-spend"),
    tile("Tokens", int(tokens), "total-tokens"),
    tile("Error rate", requests ? percent(errors / requests) : "–", "total-error-rate"),
    tile("Latency p50", ms(report.latencyInMsMedian), "total-p50"),
    tile("Latency p99", ms(report.latencyInMs99th), "total-p99"),
  );
  const charts = [
    timeChart({
      id: "chart-requests",
      title: "Requests",
      times: s.times,
      series: [{ label: "Requests", values: s.requests }, { label: "Errors", values: s.errors }],
      format: int,
      summary: `${int(requests)} in total, ${int(errors)} not 2xx`,
      bars: true,
    }),
    timeChart({
      id: "chart-spend",
      title: "Spend",
      times: s.times,
      series: [{ label: "Spend", values: s.spend }],
      format: usd,
      summary: `${usd(sum(s.spend))} in total`,
      bars: true,
    }),
    timeChart({
      id: "chart-tokens",
      title: "Tokens",
      times: s.times,
      series: [{ label: "Prompt", values: s.prompt }, { label: "Completion", values: s.completion }],
      format: int,
      summary: `${int(sum(s.prompt))} prompt, ${int(sum(s.completion))} completion`,
    }),
    timeChart({
      id: "chart-error-rate",
      title: "Error rate",
      times: s.times,
      series: [{ label: "Error rate", values: s.errorRate }],
      format: percent,
      summary: requests ? `${percent(errors / requests)} of requests` : "no requests",
    }),
    timeChart({
      id: "chart-latency",
      title: "Latency",
      times: s.times,
      series: [{ label: "p50", values: s.p50 }, { label: "p99", values: s.p99 }],
      format: ms,
      summary: `p50 ${ms(report.latencyInMsMedian)}, p99 ${ms(report.latencyInMs99th)} over the range`,
    }),
  ];
  container.replaceChildren(tiles, h("div", { class: "charts" }, charts.map((c) => c.element)));
  return () => charts.forEach((c) => c.destroy());
}
