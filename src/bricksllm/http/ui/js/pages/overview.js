// Overview, the landing page: usage over the chosen range, then every key with its spend
// against its limits (closest to a limit first).

import { api, paths } from "../api.js";
import { h, heading, table } from "../dom.js";
import { limitsText } from "../format.js";
import { pressure, spendCells, statusBadge, tags } from "../keyinfo.js";
import { rangePicker, renderUsage } from "../usage.js";

const REFRESH_MS = 30_000;

export async function render(main, { query }) {
  let range = query.get("range") || "day";
  const usage = h("div", { class: "usage-view" });
  const keysBox = h("div");
  const picker = rangePicker(range, (name) => {
    range = name;
    history.replaceState(null, "", `#/?range=${name}`); // no hashchange: focus stays on the picker
    load();
  });
  main.append(heading("Overview", picker), usage, h("h2", {}, "Keys"), keysBox);

  let release = null;
  const load = async () => {
    const [next] = await Promise.all([renderUsage(usage, { range }), renderKeys(keysBox)]);
    if (release) release();
    release = next;
  };
  await load();
  const timer = setInterval(() => load().catch(() => {}), REFRESH_MS);
  return () => {
    clearInterval(timer);
    if (release) release();
  };
}

async function renderKeys(box) {
  const [keys, usages] = await Promise.all([api.get(paths.keys), api.get(paths.keyUsage)]);
  const usageOf = new Map(usages.map((u) => [u.id, u]));
  const rows = keys
    .map((k) => ({ key: k, usage: usageOf.get(k.keyId) }))
    .sort((a, b) => pressure(b.key, b.usage) - pressure(a.key, a.usage) || a.key.name.localeCompare(b.key.name));
  box.replaceChildren(
    table(
      [
        { label: "Key", cell: (r) => h("a", { href: `#/keys/${encodeURIComponent(r.key.keyId)}` }, r.key.name) },
        { label: "Status", cell: (r) => statusBadge(r.key) },
        { label: "Tags", cell: (r) => tags(r.key) },
        { label: "Spend (all time)", cell: (r) => spendCells(r.key, r.usage).total },
        { label: "Spend (window)", cell: (r) => spendCells(r.key, r.usage).window },
        { label: "Limits", cell: (r) => limitsText(r.key) },
      ],
      rows,
      { caption: "Keys and their spend", empty: "No keys yet: create one on the Keys page." },
    ),
  );
}
