// Events: every proxied request, filterable (key, tag, model, status, time range, custom id)
// and paginated with the total from X-Total-Count. Filters live in the URL, so a view can be
// bookmarked or linked (a key's page links to its events).

import { api, paths, query, request } from "../api.js";
import { h, heading, table, uid } from "../dom.js";
import { dateTime, int, ms, usd } from "../format.js";

const STATUSES = [
  ["", "Any"],
  ["2xx", "Success (2xx)"],
  ["4xx", "Client errors (4xx)"],
  ["429", "Rate or spend limited (429)"],
  ["5xx", "Server errors (5xx)"],
];
const SIZES = ["25", "50", "100"];

/** The events table, shared with a key's page. `keysById` names the keys. */
export function eventsTable(events, keysById) {
  return table(
    [
      { label: "Time", cell: (e) => dateTime(e.created_at), nowrap: true },
      {
        label: "Key",
        cell: (e) => {
          const key = keysById.get(e.key_id);
          return e.key_id ? h("a", { href: `#/keys/${encodeURIComponent(e.key_id)}` }, key ? key.name : e.key_id.slice(0, 8)) : "–";
        },
      },
      { label: "Model", cell: (e) => e.model || "–", nowrap: true },
      { label: "Status", cell: (e) => h("span", { class: e.status >= 400 ? "error" : null }, String(e.status)), num: true },
      { label: "Prompt", cell: (e) => int(e.prompt_token_count), num: true },
      { label: "Completion", cell: (e) => int(e.completion_token_count), num: true },
      { label: "Cost", cell: (e) => usd(e.cost_in_usd), num: true },
      { label: "Latency", cell: (e) => ms(e.latency_in_ms), num: true },
      { label: "Path", cell: (e) => h("code", {}, `${e.method} ${e.path}`) },
      { label: "Custom id", cell: (e) => e.custom_id || "" },
      { label: "Tags", cell: (e) => e.tags.map((t) => h("span", { class: "tag" }, t)) },
    ],
    events,
    { caption: "Events", empty: "No events match." },
  );
}

function toSeconds(local) {
  if (!local) return "";
  const t = new Date(local).getTime();
  return Number.isNaN(t) ? "" : Math.floor(t / 1000);
}

function filterField(label, control) {
  const id = uid("filter");
  control.id = id;
  return h("div", { class: "field" }, h("label", { for: id }, label), control);
}

export async function render(main, { query: q }) {
  const f = {
    key: q.get("key") || "",
    tag: q.get("tag") || "",
    model: q.get("model") || "",
    status: q.get("status") || "",
    from: q.get("from") || "",
    to: q.get("to") || "",
    customId: q.get("customId") || "",
    size: SIZES.includes(q.get("size")) ? q.get("size") : "50",
  };
  const page = Math.max(0, parseInt(q.get("page") || "0", 10) || 0);
  const size = Number(f.size);
  const keys = await api.get(paths.keys);
  const keysById = new Map(keys.map((k) => [k.keyId, k]));

  const controls = {
    key: h("select", { name: "key" }, h("option", { value: "" }, "Any key"), keys.map((k) => h("option", { value: k.keyId, selected: k.keyId === f.key }, k.name))),
    tag: h("input", { name: "tag", value: f.tag, placeholder: "team-a" }),
    model: h("input", { name: "model", value: f.model, placeholder: "gpt-4o" }),
    status: h("select", { name: "status" }, STATUSES.map(([v, l]) => h("option", { value: v, selected: v === f.status }, l))),
    from: h("input", { name: "from", type: "datetime-local", value: f.from, step: "1" }),
    to: h("input", { name: "to", type: "datetime-local", value: f.to, step: "1" }),
    customId: h("input", { name: "customId", value: f.customId }),
    size: h("select", { name: "size" }, SIZES.map((s) => h("option", { value: s, selected: s === f.size }, s))),
  };
  const go = (values, toPage) => {
    window.location.hash = `#/events${query({ ...values, size: values.size === "50" ? "" : values.size, page: toPage || "" })}`;
  };
  const form = h(
    "form",
    { class: "filters panel", role: "search", "aria-label": "Filter events" },
    filterField("Key", controls.key),
    filterField("Tag", controls.tag),
    filterField("Model", controls.model),
    filterField("Status", controls.status),
    filterField("From", controls.from),
    filterField("Until", controls.to),
    filterField("Custom id", controls.customId),
    filterField("Per page", controls.size),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Apply"), h("button", { type: "button", class: "quiet", onclick: () => go({}, 0) }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    go(Object.fromEntries(Object.entries(controls).map(([name, c]) => [name, c.value.trim()])), 0);
  });

  const { data: events, headers } = await request(
    "GET",
    paths.events +
      query({
        keyIds: f.key,
        tags: f.tag,
        model: f.model,
        status: f.status,
        start: toSeconds(f.from),
        end: toSeconds(f.to),
        customId: f.customId,
        limit: size,
        offset: page * size,
        returnCount: "true",
      }),
  );
  const total = Number(headers.get("X-Total-Count") || events.length);
  const first = total ? page * size + 1 : 0;
  const last = page * size + events.length;
  const pager = h(
    "div",
    { class: "pager" },
    h("button", { type: "button", class: "quiet", disabled: page === 0, onclick: () => go(f, page - 1) }, "Previous"),
    h("span", { id: "events-range", "aria-live": "polite" }, `${int(first)}–${int(last)} of ${int(total)}`),
    h("button", { type: "button", class: "quiet", disabled: last >= total, onclick: () => go(f, page + 1) }, "Next"),
  );
  main.append(heading("Events"), form, eventsTable(events, keysById), pager);
}
