// Provider settings: list, create, edit. Credentials are write-only: the admin API never
// returns them (only their names, in settingKeys), so the form can replace or remove a
// credential but never show one.

import { api, paths } from "../api.js";
import { collectionPage } from "../collection.js";
import { h } from "../dom.js";
import { dateTime } from "../format.js";
import { json, list } from "../forms.js";

const BUILTIN = ["openai", "anthropic", "azure", "vllm", "deepinfra", "bedrock"];
const PUBLIC = ["url", "resourceName", "apiVersion", "awsRegion"]; // returned by the API
let customNames = [];

/** "name=value" lines -> {name: value}; a line "name=" removes the entry on edit. */
function entries(text) {
  const out = {};
  for (const raw of String(text || "").split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const at = line.indexOf("=");
    if (at <= 0) throw new SyntaxError(`Other entries: "${line.slice(0, 40)}" is not name=value`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

function form(row) {
  const stored = row ? row.settingKeys : [];
  const secretNames = stored.filter((k) => !PUBLIC.includes(k));
  const fields = [
    row
      ? null
      : {
          name: "provider",
          label: "Provider",
          type: "select",
          required: true,
          options: [["", "– choose –"], ...[...BUILTIN, ...customNames].map((p) => [p, p])],
        },
    { name: "name", label: "Name", help: "A label for people, e.g. \"OpenAI production\"" },
    {
      name: "apikey",
      label: "API key",
      type: "password",
      autocomplete: "new-password",
      apiNames: ["setting.apikey"],
      help: row && stored.includes("apikey") ? "Stored (never shown). Type a new one to replace it; leave empty to keep it." : "The provider's credential; stored, never shown again.",
    },
    { name: "url", label: "Base URL", apiNames: ["setting.url"], placeholder: "https://api.openai.com", help: "Optional for most providers; the gateway calls {url}/v1/..." },
    {
      name: "other",
      label: "Other entries",
      type: "textarea",
      rows: 3,
      apiNames: ["setting"],
      placeholder: "resourceName=my-azure-resource\napiVersion=2024-06-01",
      help:
        "One name=value per line (Azure: resourceName, apiVersion; Bedrock: awsAccessKeyId, awsSecretAccessKey, awsRegion). " +
        (secretNames.filter((k) => k !== "apikey").length
          ? `Stored credentials (hidden): ${secretNames.filter((k) => k !== "apikey").join(", ")}; "name=" removes one.`
          : ""),
    },
    { name: "allowedModels", label: "Allowed models", help: "Comma-separated; empty = every model", apiNames: ["allowedModels"] },
    {
      name: "prices",
      label: "Price overrides (JSON)",
      type: "textarea",
      rows: 3,
      apiNames: ["prices"],
      placeholder: '{"my-model": {"input": 0.5, "output": 1.5}}',
      help: "USD per 1M tokens, per model; empty = the built-in price table",
    },
  ].filter(Boolean);
  const values = row
    ? {
        name: row.name,
        url: row.setting.url || "",
        other: Object.entries(row.setting)
          .filter(([k]) => k !== "url")
          .map(([k, v]) => `${k}=${v}`)
          .join("\n"),
        allowedModels: row.allowedModels.join(", "),
        prices: Object.keys(row.prices).length ? JSON.stringify(row.prices, null, 2) : "",
      }
    : {};
  return { fields, values };
}

function body(values, row) {
  const setting = entries(values.other);
  if (values.apikey) setting.apikey = values.apikey;
  if (values.url.trim() || (row && row.setting.url)) setting.url = values.url.trim();
  const out = {
    name: values.name,
    setting,
    allowedModels: list(values.allowedModels),
    prices: json(values.prices, "Price overrides", {}),
  };
  if (!row) out.provider = values.provider;
  return out;
}

export const render = collectionPage({
  title: "Provider settings",
  noun: "provider setting",
  intro: "Credentials and options for each upstream. Credentials are write-only: they can be replaced, never read back.",
  rowLabel: (row) => row.name || row.provider,
  load: async () => {
    const [settings, custom] = await Promise.all([api.get(paths.settings), api.get(paths.custom)]);
    customNames = custom.map((c) => c.provider);
    return settings;
  },
  columns: [
    { label: "Name", cell: (r) => r.name || h("span", { class: "muted" }, "(unnamed)") },
    { label: "Provider", cell: (r) => r.provider },
    { label: "Id", cell: (r) => h("code", {}, r.id) },
    { label: "Options", cell: (r) => Object.entries(r.setting).map(([k, v]) => h("div", {}, h("span", { class: "muted" }, `${k}: `), v)) },
    {
      label: "Credentials",
      cell: (r) => r.settingKeys.filter((k) => !PUBLIC.includes(k)).map((k) => h("div", {}, `${k}: `, h("span", { class: "muted", "aria-label": "hidden" }, "••••••"))),
    },
    { label: "Allowed models", cell: (r) => (r.allowedModels.length ? r.allowedModels.join(", ") : "all") },
    { label: "Updated", cell: (r) => dateTime(r.updatedAt) },
  ],
  form,
  create: (values) => api.put(paths.settings, body(values, null)),
  update: (row, values) => api.patch(`${paths.settings}/${encodeURIComponent(row.id)}`, body(values, row)),
});
