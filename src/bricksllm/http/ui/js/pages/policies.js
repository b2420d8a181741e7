// PII policies: what a key's requests are screened for and what happens when something is found.
// The rules are edited as JSON (the admin API's own shape: config, regexConfig, customConfig);
// the API validates them and names the field that is wrong.

import { api, paths } from "../api.js";
import { collectionPage } from "../collection.js";
import { h } from "../dom.js";
import { dateTime } from "../format.js";
import { confirmAction, json } from "../forms.js";

const TEMPLATE = {
  config: { rules: { email: "allow_but_redact", credit_debit_number: "block" } },
  regexConfig: { rules: [{ definition: "(?i)project\\s+[a-z]+", action: "allow_but_warn" }] },
  customConfig: { rules: [] },
};

function summary(row) {
  const entities = Object.entries(row.config.rules || {}).map(([entity, action]) => `${entity}: ${action}`);
  const regexes = (row.regexConfig.rules || []).map((r) => `/${r.definition}/: ${r.action}`);
  return [...entities, ...regexes].map((line) => h("div", {}, h("code", {}, line)));
}

function rulesOf(values) {
  const rules = json(values.rules, "Rules", {});
  return { config: rules.config, regexConfig: rules.regexConfig, customConfig: rules.customConfig };
}

export const render = collectionPage({
  title: "PII policies",
  noun: "policy",
  intro: "What a key's requests are screened for before they are forwarded; attach one to a key by its id.",
  rowLabel: (row) => row.name,
  load: () => api.get(paths.policies),
  columns: [
    { label: "Name", cell: (r) => h("strong", {}, r.name) },
    { label: "Id", cell: (r) => h("code", {}, r.id) },
    { label: "Rules", cell: summary },
    { label: "Engine failure", cell: (r) => (r.failOpen ? "forward (fail open)" : "503 (fail closed)") },
    { label: "Answers screened", cell: (r) => (r.scanResponses ? "yes" : "no") },
    { label: "Updated", cell: (r) => dateTime(r.updatedAt) },
  ],
  form: (row) => ({
    fields: [
      { name: "name", label: "Name", required: true },
      { name: "tags", label: "Tags", help: "Comma-separated" },
      { name: "rules", label: "Rules (JSON)", type: "textarea", rows: 12, required: true,
        help: "config.rules: entity to action; regexConfig.rules: RE2 patterns. Actions: block, allow_but_warn, allow_but_redact, allow" },
      { name: "failOpen", label: "Forward when the PII engine fails (fail open)", type: "checkbox" },
      { name: "scanResponses", label: "Also screen non-streamed answers", type: "checkbox" },
    ],
    values: row
      ? {
          ...row,
          tags: row.tags.join(", "),
          rules: JSON.stringify({ config: row.config, regexConfig: row.regexConfig, customConfig: row.customConfig }, null, 2),
        }
      : { rules: JSON.stringify(TEMPLATE, null, 2) },
  }),
  create: (v) =>
    api.post(paths.policies, {
      name: v.name,
      tags: String(v.tags || "").split(",").map((t) => t.trim()).filter(Boolean),
      ...rulesOf(v),
      failOpen: v.failOpen,
      scanResponses: v.scanResponses,
    }),
  update: (row, v) =>
    api.patch(`${paths.policies}/${encodeURIComponent(row.id)}`, {
      name: v.name,
      tags: String(v.tags || "").split(",").map((t) => t.trim()).filter(Boolean),
      ...rulesOf(v),
      failOpen: v.failOpen,
      scanResponses: v.scanResponses,
    }),
  actions: [
    {
      label: "Delete",
      danger: true,
      run: async (row) => {
        const ok = await confirmAction({
          title: `Delete policy ${row.name}?`,
          text: "Only a policy no key uses can be deleted: detach it from its keys first.",
          confirmLabel: "Delete",
        });
        if (!ok) return null;
        await api.del(`${paths.policies}/${encodeURIComponent(row.id)}`);
        return `Deleted ${row.name}`;
      },
    },
  ],
});
