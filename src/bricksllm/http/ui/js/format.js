// How numbers, money and times are shown. Times are shown in the browser's time zone.

const usdFormat = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 2 });
const smallUsd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumSignificantDigits: 3 });
const intFormat = new Intl.NumberFormat("en-US");

export function usd(value) {
  if (!value) return "$0.00";
  return Math.abs(value) < 0.01 ? smallUsd.format(value) : usdFormat.format(value);
}

export function int(value) {
  return intFormat.format(Math.round(value || 0));
}

export function ms(value) {
  if (!value) return "0 ms";
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  return value < 10 ? `${Number(value.toFixed(1))} ms` : `${Math.round(value)} ms`;
}

export function percent(value) {
  return `${(value * 100).toFixed(value && value < 0.1 ? 1 : 0)}%`;
}

export function dateTime(seconds) {
  if (!seconds) return "";
  return new Date(seconds * 1000).toLocaleString(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

const UNITS = { s: "second", m: "minute", h: "hour", d: "day", mo: "month" };
export function unitName(unit) {
  return UNITS[unit] || unit;
}

/** active | revoked | expired, from a key of the admin API (`nowSeconds` given for tests). */
export function keyStatus(key, nowSeconds = Date.now() / 1000) {
  if (key.revoked) return "revoked";
  if (key.expiresAt && key.expiresAt <= nowSeconds) return "expired";
  return "active";
}

/** A short text for a key's limits, e.g. "$5.00 total · $1.00 / day · 10 / minute". */
export function limitsText(key) {
  const parts = [];
  if (key.costLimitInUsd) parts.push(`${usd(key.costLimitInUsd)} total`);
  if (key.costLimitInUsdOverTime) parts.push(`${usd(key.costLimitInUsdOverTime)} / ${unitName(key.costLimitInUsdUnit)}`);
  if (key.rateLimitOverTime) parts.push(`${int(key.rateLimitOverTime)} req / ${unitName(key.rateLimitUnit)}`);
  if (key.ttl) parts.push(`ttl ${key.ttl}`);
  return parts.join(" · ") || "no limits";
}
