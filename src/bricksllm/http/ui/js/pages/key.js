// A key's page: its configuration, spend against its limits, usage charts and latest events.

import { api, paths, query } from "../api.js";
import { h, heading, toast } from "../dom.js";
import { dateTime, limitsText } from "../format.js";
import { spendCells, statusBadge, tags } from "../keyinfo.js";
import { rangePicker, renderUsage } from "../usage.js";
import { eventsTable } from "./events.js";
import { editKey, keyActions } from "./keys.js";

export async function render(main, { params, query: q }) {
  const [keyId] = params;
  let range = q.get("range") || "day";
  const [found, usages, settings] = await Promise.all([
    api.get(`${paths.keys}${query({ keyIds: keyId })}`),
    api.get(`${paths.keyUsage}${query({ keyIds: keyId })}`).catch(() => []),
    api.get(paths.settings),
  ]);
  if (!found.length) {
    main.append(heading("Key not found"), h("p", {}, h("a", { href: "#/keys" }, "All keys")));
    return null;
  }
  const key = found[0];
  const setting = settings.find((s) => s.id === key.settingId);
  const spend = spendCells(key, usages[0]);
  const reload = () => window.dispatchEvent(new HashChangeEvent("hashchange"));
  const buttons = h(
    "div",
    { class: "actions" },
    h("button", { type: "button", class: "quiet", onclick: async () => { if (await editKey(key)) { toast("Saved key"); reload(); } } }, "Edit"),
    keyActions
      .filter((a) => !a.when || a.when(key))
      .map((a) =>
        h("button", {
          type: "button",
          class: a.danger ? "danger" : "quiet",
          onclick: async () => {
            const message = await a.run(key);
            if (!message) return;
            toast(message);
            if (a.label === "Delete") window.location.hash = "#/keys";
            else reload();
          },
        }, a.label),
      ),
  );
  const facts = h(
    "dl",
    { class: "facts panel" },
    [
      ["Status", statusBadge(key)],
      key.revoked && key.revokedReason ? ["Revoked because", key.revokedReason] : null,
      ["Key id", h("code", {}, key.keyId)],
      ["Tags", key.tags.length ? tags(key) : "–"],
      ["Provider setting", setting ? `${setting.name || setting.id} (${setting.provider})` : key.settingId || "–"],
      ["Limits", limitsText(key)],
      ["Spend, all time", spend.total],
      ["Spend, this period", spend.window],
      ["Expires", key.expiresAt ? dateTime(key.expiresAt) : "never"],
      ["Created", dateTime(key.createdAt)],
      ["Updated", dateTime(key.updatedAt)],
    ]
      .filter(Boolean)
      .flatMap(([label, value]) => [h("dt", {}, label), h("dd", {}, value)]),
  );
  const usage = h("div", { class: "usage-view" });
  const eventsBox = h("div");
  let release = null;
  const loadUsage = async () => {
    const next = await renderUsage(usage, { range, keyIds: [keyId] });
    if (release) release();
    release = next;
  };
  const picker = rangePicker(range, (name) => {
    range = name;
    history.replaceState(null, "", `#/keys/${encodeURIComponent(keyId)}?range=${name}`);
    loadUsage();
  });
  main.append(
    heading(`Key ${key.name}`, buttons),
    h("p", {}, h("a", { href: "#/keys" }, "All keys")),
    facts,
    h("div", { class: "page-head" }, h("h2", {}, "Usage"), picker),
    usage,
    h("h2", {}, "Latest events"),
    eventsBox,
    h("p", {}, h("a", { href: `#/events${query({ key: keyId })}` }, "All events of this key")),
  );
  const [, latest] = await Promise.all([loadUsage(), api.get(`${paths.events}${query({ keyIds: keyId, limit: 10 })}`)]);
  eventsBox.replaceChildren(eventsTable(latest, new Map([[key.keyId, key]])));
  return () => {
    if (release) release();
  };
}
