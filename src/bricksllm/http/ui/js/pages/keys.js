// Keys: the table, create, edit limits, revoke and reinstate, delete. `keyActions` is shared
// with a key's own page.

import { api, paths } from "../api.js";
import { collectionPage } from "../collection.js";
import { h, toast } from "../dom.js";
import { dateTime, limitsText } from "../format.js";
import { confirmAction, list, openForm } from "../forms.js";
import { spendCells, statusBadge, tags } from "../keyinfo.js";

const COST_UNITS = [["", "–"], ["m", "per minute"], ["h", "per hour"], ["d", "per day"], ["mo", "per month"]];
const RATE_UNITS = [["", "–"], ["s", "per second"], ["m", "per minute"], ["h", "per hour"], ["d", "per day"]];

function settingLabel(s) {
  return s.name ? `${s.name} (${s.provider})` : `${s.provider} ${s.id.slice(0, 8)}`;
}

/** The key form: create (row null) or edit. `settings` and `policies` fill their choices. */
export function keyForm(row, settings, policies = []) {
  const fields = [
    { name: "name", label: "Name", required: true },
    row
      ? null
      : {
          name: "key",
          label: "Secret",
          type: "secret",
          required: true,
          help: "What clients send as their API key. Stored only as a hash: copy it now, it cannot be shown again.",
        },
    { name: "tags", label: "Tags", help: "Comma-separated, e.g. team-a, batch", placeholder: "team-a, batch" },
    {
      name: "settingId",
      label: "Provider setting",
      type: "select",
      required: !row || !row.settingIds.length,
      options: [["", "– choose –"], ...settings.map((s) => [s.id, settingLabel(s)])],
    },
    { name: "costLimitInUsd", label: "Spend limit, all time (USD)", type: "number", min: "0", step: "any", help: "0 = no limit" },
    { name: "costLimitInUsdOverTime", label: "Spend limit per period (USD)", type: "number", min: "0", step: "any", help: "0 = no limit" },
    { name: "costLimitInUsdUnit", label: "Spend period", type: "select", options: COST_UNITS },
    { name: "rateLimitOverTime", label: "Requests per period", type: "number", min: "0", step: "1", help: "0 = no limit" },
    { name: "rateLimitUnit", label: "Request period", type: "select", options: RATE_UNITS },
    {
      name: "policyId",
      label: "PII policy",
      type: "select",
      options: [["", "– none –"], ...policies.map((p) => [p.id, p.name])],
      help: "Screens every request of the key before it is forwarded",
    },
    { name: "ttl", label: "Time to live", placeholder: "e.g. 30d, 12h", help: "Counted from creation; empty = never expires" },
    {
      name: "allowedPaths",
      label: "Allowed paths",
      type: "textarea",
      rows: 3,
      placeholder: "POST /api/providers/openai/v1/chat/completions",
      help: "One \"METHOD /path\" per line; empty = every path",
      apiNames: ["allowedPaths"],
    },
  ].filter(Boolean);
  const values = row
    ? {
        ...row,
        tags: row.tags.join(", "),
        allowedPaths: row.allowedPaths.map((p) => `${p.method} ${p.path}`).join("\n"),
      }
    : { costLimitInUsd: 0, costLimitInUsdOverTime: 0, rateLimitOverTime: 0, settingId: settings.length === 1 ? settings[0].id : "" };
  return { fields, values };
}

function parsePaths(text) {
  return String(text || "")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .map((line) => {
      const [method, ...rest] = line.split(/\s+/);
      return rest.length ? { method, path: rest.join(" ") } : { method: "POST", path: method };
    });
}

export function keyBody(values) {
  return {
    name: values.name,
    tags: list(values.tags),
    settingId: values.settingId,
    costLimitInUsd: values.costLimitInUsd,
    costLimitInUsdOverTime: values.costLimitInUsdOverTime,
    costLimitInUsdUnit: values.costLimitInUsdUnit,
    rateLimitOverTime: values.rateLimitOverTime,
    rateLimitUnit: values.rateLimitUnit,
    ttl: values.ttl.trim(),
    allowedPaths: parsePaths(values.allowedPaths),
    policyId: values.policyId || "",
  };
}

/** What the key form chooses from, fetched when it opens (it may have changed since). */
async function choices() {
  return Promise.all([api.get(paths.settings), api.get(paths.policies)]);
}

export async function editKey(row) {
  const [settings, policies] = await choices();
  const { fields, values } = keyForm(row, settings, policies);
  return openForm({
    title: `Edit key ${row.name}`,
    fields,
    values,
    onSubmit: (v) => api.patch(`${paths.keys}/${encodeURIComponent(row.keyId)}`, keyBody(v)),
  });
}

/** Revoke (asking for a reason), reinstate and delete: [{label, when, danger, run}]. */
export const keyActions = [
  {
    label: "Revoke",
    when: (row) => !row.revoked,
    run: async (row) => {
      const done = await openForm({
        title: `Revoke key ${row.name}`,
        fields: [{ name: "reason", label: "Reason (optional)" }],
        submitLabel: "Revoke",
        onSubmit: (v) =>
          api.patch(`${paths.keys}/${encodeURIComponent(row.keyId)}`, { revoked: true, revokedReason: v.reason }),
      });
      return done ? `Revoked ${row.name}` : null;
    },
  },
  {
    label: "Reinstate",
    when: (row) => row.revoked,
    run: async (row) => {
      await api.patch(`${paths.keys}/${encodeURIComponent(row.keyId)}`, { revoked: false });
      return `Reinstated ${row.name}`;
    },
  },
  {
    label: "Delete",
    danger: true,
    run: async (row) => {
      const ok = await confirmAction({
        title: `Delete key ${row.name}?`,
        text: "Clients using it are refused at once. Its recorded events stay.",
        confirmLabel: "Delete",
      });
      if (!ok) return null;
      await api.del(`${paths.keys}/${encodeURIComponent(row.keyId)}`);
      return `Deleted ${row.name}`;
    },
  },
];

export const render = collectionPage({
  title: "Keys",
  noun: "key",
  intro: "API keys handed to clients, with their limits and spend.",
  rowLabel: (row) => row.name,
  load: async () => {
    const [keys, usages, settings] = await Promise.all([api.get(paths.keys), api.get(paths.keyUsage), api.get(paths.settings)]);
    const usageOf = new Map(usages.map((u) => [u.id, u]));
    const settingOf = new Map(settings.map((s) => [s.id, s]));
    return keys
      .map((k) => ({ ...k, usage: usageOf.get(k.keyId), setting: settingOf.get(k.settingId) }))
      .sort((a, b) => a.name.localeCompare(b.name));
  },
  columns: [
    { label: "Name", cell: (r) => h("a", { href: `#/keys/${encodeURIComponent(r.keyId)}` }, r.name) },
    { label: "Status", cell: (r) => statusBadge(r) },
    { label: "Tags", cell: (r) => tags(r) },
    { label: "Provider setting", cell: (r) => (r.setting ? settingLabel(r.setting) : r.settingIds.length ? `${r.settingIds.length} settings` : "–") },
    { label: "Spend (all time)", cell: (r) => spendCells(r, r.usage).total },
    { label: "Spend (window)", cell: (r) => spendCells(r, r.usage).window },
    { label: "Limits", cell: (r) => limitsText(r) },
    { label: "Created", cell: (r) => dateTime(r.createdAt) },
  ],
  form: async (row) => keyForm(row, ...(await choices())),
  create: async (values) => {
    const created = await api.put(paths.keys, { ...keyBody(values), key: values.key });
    showSecretOnce(created.name, values.key);
    return created;
  },
  update: (row, values) => api.patch(`${paths.keys}/${encodeURIComponent(row.keyId)}`, keyBody(values)),
  actions: keyActions,
});

function showSecretOnce(name, secret) {
  const close = h("button", { type: "button", onclick: () => dialog.close() }, "Done");
  const copy = h(
    "button",
    {
      type: "button",
      class: "quiet",
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(secret);
          toast("Copied");
        } catch {
          toast("Copy it by hand: the clipboard is not available here");
        }
      },
    },
    "Copy",
  );
  const dialog = h(
    "dialog",
    { "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, `Key ${name} created`),
    h("p", {}, "Its secret, shown this once (the gateway keeps only a hash):"),
    h("p", { class: "secret-once mono", id: "created-secret" }, secret),
    h("div", { class: "buttons" }, copy, close),
  );
  dialog.addEventListener("close", () => dialog.remove());
  // after the create form has closed
  setTimeout(() => {
    document.body.append(dialog);
    dialog.showModal();
    close.focus();
  }, 0);
}
