// Routes: a path of the operator's that tries steps (provider, model, setting) in order with
// retries, fails over between them and may answer identical requests from a cache. The steps
// are edited as JSON (the admin API's own shape); the API validates them and names the field.

import { api, paths } from "../api.js";
import { collectionPage } from "../collection.js";
import { h } from "../dom.js";
import { dateTime } from "../format.js";
import { confirmAction, json, list } from "../forms.js";

const TEMPLATE = [
  { provider: "openai", model: "gpt-4o-mini", retries: 2, retryInterval: "500ms", timeout: "20s" },
  { provider: "azure", model: "my-deployment", settingId: "" },
];
const STRATEGIES = [
  ["constant", "Constant interval"],
  ["exponential", "Exponential (the interval doubles)"],
];

function steps(row) {
  return row.steps.map((s, i) => {
    const retries = s.retries ? `, ${s.retries} retries` : "";
    return h("div", {}, h("code", {}, `${i + 1}. ${s.provider} ${s.model}${retries}`));
  });
}

function body(v) {
  return {
    name: v.name,
    path: v.path,
    keyIds: list(v.keyIds),
    steps: json(v.steps, "Steps", []),
    retryStrategy: v.retryStrategy,
    cacheConfig: { enabled: v.cacheEnabled, ttl: String(v.cacheTtl || "").trim() },
  };
}

export const render = collectionPage({
  title: "Routes",
  noun: "route",
  intro: "Call POST /api/routes{path} (or an OpenAI SDK with base_url …/api/routes{path}): the steps are tried in order until one answers.",
  rowLabel: (row) => row.name,
  load: () => api.get(paths.routes),
  columns: [
    { label: "Name", cell: (r) => h("strong", {}, r.name) },
    { label: "Path", cell: (r) => h("code", {}, `/api/routes${r.path}`) },
    { label: "Steps", cell: steps },
    { label: "Keys", cell: (r) => String(r.keyIds.length) },
    { label: "Cache", cell: (r) => (r.cacheConfig.enabled ? `on, ${r.cacheConfig.ttl || "1h"}` : "off") },
    { label: "Updated", cell: (r) => dateTime(r.updatedAt) },
  ],
  form: (row) => ({
    fields: [
      { name: "name", label: "Name", required: true },
      { name: "path", label: "Path", required: true, placeholder: "/chat/prod", help: "Served at /api/routes{path}" },
      { name: "keyIds", label: "Key ids", required: true, help: "Comma-separated: the keys allowed to call the route" },
      { name: "steps", label: "Steps (JSON)", type: "textarea", rows: 10, required: true,
        help: "provider (openai, azure, vllm, deepinfra), model, settingId, retries, retryInterval, timeout, params" },
      { name: "retryStrategy", label: "Retry strategy", type: "select", options: STRATEGIES },
      { name: "cacheEnabled", label: "Answer identical requests from the cache", type: "checkbox",
        apiNames: ["cacheConfig.enabled"] },
      { name: "cacheTtl", label: "Cache ttl", placeholder: "1h", help: "At most 30d", apiNames: ["cacheConfig.ttl"] },
    ],
    values: row
      ? {
          ...row,
          keyIds: row.keyIds.join(", "),
          steps: JSON.stringify(row.steps, null, 2),
          cacheEnabled: row.cacheConfig.enabled,
          cacheTtl: row.cacheConfig.ttl,
        }
      : { steps: JSON.stringify(TEMPLATE, null, 2), retryStrategy: "constant" },
  }),
  create: (v) => api.post(paths.routes, body(v)),
  update: (row, v) => api.patch(`${paths.routes}/${encodeURIComponent(row.id)}`, body(v)),
  actions: [
    {
      label: "Delete",
      danger: true,
      run: async (row) => {
        const ok = await confirmAction({
          title: `Delete route ${row.name}?`,
          text: "Its path answers 404 on every instance within a second.",
          confirmLabel: "Delete",
        });
        if (!ok) return null;
        await api.del(`${paths.routes}/${encodeURIComponent(row.id)}`);
        return `Deleted ${row.name}`;
      },
    },
  ],
});
