// A tiny DOM builder. Every string becomes a text node: data never reaches innerHTML.

/**
 * h("a", {href: "#/keys", class: "x", onclick: fn}, "text", childNode, [more, children])
 * Attributes: "class", "for", "on<event>" handlers, booleans (true = present, false = absent),
 * everything else via setAttribute.
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "for") {
      el.htmlFor = value;
    } else if (name === "value") {
      el.value = value;
    } else if (value === true) {
      el.setAttribute(name, "");
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

let counter = 0;
/** A unique id for label/control pairs. */
export function uid(prefix = "f") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A table: columns are {label, cell(row) -> text|Node, num?, nowrap?}; `caption` is read by screen readers. */
export function table(columns, rows, { caption, empty = "Nothing yet." } = {}) {
  if (!rows.length) return h("p", { class: "empty panel" }, empty);
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      {},
      caption ? h("caption", { class: "visually-hidden" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
      h(
        "tbody",
        {},
        rows.map((row) =>
          h("tr", {}, columns.map((c) => h("td", { class: [c.num && "num", c.nowrap && "nowrap"].filter(Boolean).join(" ") || null }, c.cell(row)))),
        ),
      ),
    ),
  );
}

let toastTimer = 0;
/** A short, polite status message (the toast region is aria-live). */
export function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("show");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.classList.remove("show"), 3000);
}

/** A page heading that receives focus after navigation (for keyboard and screen-reader users). */
export function heading(text, ...extra) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, text), ...extra);
}
