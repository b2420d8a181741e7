// How a key's state and spend are shown wherever keys are listed.

import { h } from "./dom.js";
import { keyStatus, unitName, usd } from "./format.js";

export function statusBadge(key) {
  const status = keyStatus(key);
  const title = status === "revoked" && key.revokedReason ? key.revokedReason : null;
  return h("span", { class: `badge ${status}`, title }, status);
}

export function tags(key) {
  return key.tags.map((t) => h("span", { class: "tag" }, t));
}

/** "$1.20 of $5.00" with a meter, or just the amount when there is no limit. */
export function spendAgainst(spent, limit, label) {
  if (!limit) return h("div", { class: "usage" }, h("div", { class: "figures" }, usd(spent), h("span", { class: "muted" }, " · no limit")));
  const text = `${usd(spent)} of ${usd(limit)}`;
  return h(
    "div",
    { class: "usage" },
    h("meter", { min: "0", max: String(limit), low: String(limit * 0.7), high: String(limit * 0.9), optimum: "0", value: String(Math.min(spent, limit)), "aria-label": `${label}: ${text}` }),
    h("div", { class: "figures" }, text),
  );
}

/** The all-time and the current-window spend of a key against its limits. */
export function spendCells(key, usage) {
  const spent = usage ? usage.costInUsd : 0;
  const windowSpent = usage ? usage.costInUsdOverTime : 0;
  return {
    total: spendAgainst(spent, key.costLimitInUsd, `${key.name} spend`),
    window: key.costLimitInUsdUnit
      ? h("div", {}, spendAgainst(windowSpent, key.costLimitInUsdOverTime, `${key.name} spend this ${unitName(key.costLimitInUsdUnit)}`), h("div", { class: "muted figures" }, `this ${unitName(key.costLimitInUsdUnit)}`))
      : h("span", { class: "muted" }, "–"),
  };
}

/** The largest share of any spend limit a key has used (0 without limits), to sort by urgency. */
export function pressure(key, usage) {
  if (!usage) return 0;
  const shares = [];
  if (key.costLimitInUsd) shares.push(usage.costInUsd / key.costLimitInUsd);
  if (key.costLimitInUsdOverTime) shares.push(usage.costInUsdOverTime / key.costLimitInUsdOverTime);
  return shares.length ? Math.max(...shares) : 0;
}
