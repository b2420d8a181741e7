// The dashboard shell: the password gate, the hash router and the navigation.
//
// Routes are "#/path?query". Each page module exports `render(main, {params, query})`, which
// may return a cleanup function (charts, timers). Nothing is fetched before the admin API has
// answered a probe: with ADMIN_PASS set, the page asks for the password first.

import { Unauthorized, api, password, paths, setPassword } from "./api.js";
import { h, uid } from "./dom.js";
import * as customProviders from "./pages/custom.js";
import * as events from "./pages/events.js";
import * as key from "./pages/key.js";
import * as keys from "./pages/keys.js";
import * as overview from "./pages/overview.js";
import * as policies from "./pages/policies.js";
import * as routes from "./pages/routes.js";
import * as settings from "./pages/settings.js";

const ROUTES = [
  [/^\/$/, overview, "#/"],
  [/^\/keys$/, keys, "#/keys"],
  [/^\/keys\/([^/]+)$/, key, "#/keys"],
  [/^\/settings$/, settings, "#/settings"],
  [/^\/events$/, events, "#/events"],
  [/^\/custom-providers$/, customProviders, "#/custom-providers"],
  [/^\/policies$/, policies, "#/policies"],
  [/^\/routes$/, routes, "#/routes"],
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const lock = document.getElementById("lock");
let cleanup = null;
let unlocked = false;

function location_() {
  const raw = window.location.hash.replace(/^#/, "") || "/";
  const [path, search = ""] = raw.split("?");
  return { path: path || "/", query: new URLSearchParams(search) };
}

async function route() {
  if (!unlocked) return;
  if (cleanup) cleanup();
  cleanup = null;
  const { path, query } = location_();
  const match = ROUTES.map(([re, page, navHref]) => ({ m: re.exec(path), page, navHref })).find((r) => r.m);
  for (const a of nav.querySelectorAll("a")) {
    if (match && a.getAttribute("href") === match.navHref) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const page = h("div", { class: "page" });
  main.replaceChildren(page);
  if (!match) {
    page.append(h("h1", { tabindex: "-1" }, "Not found"), h("p", {}, h("a", { href: "#/" }, "Back to the overview")));
    return;
  }
  const params = match.m.slice(1).map(decodeURIComponent);
  try {
    const result = await match.page.render(page, { params, query });
    if (page.isConnected) cleanup = typeof result === "function" ? result : null;
    else if (typeof result === "function") result();
  } catch (exc) {
    if (exc instanceof Unauthorized) return;
    if (page.isConnected) page.append(h("p", { class: "error", role: "alert" }, `Could not load this page: ${exc.message}`));
  }
  const title = page.querySelector("h1");
  // Focus follows navigation (as a page load would), unless the user already moved into the page.
  if (title && page.isConnected && !page.contains(document.activeElement)) title.focus();
}

/** True when the admin API answers (no password needed, or the stored one is right). */
async function probe() {
  try {
    await api.get(`${paths.events}?limit=1`);
    return true;
  } catch (exc) {
    if (exc instanceof Unauthorized) return false;
    throw exc;
  }
}

function showLogin(message = "") {
  unlocked = false;
  if (cleanup) cleanup();
  cleanup = null;
  document.body.dataset.auth = "locked";
  nav.hidden = true;
  lock.hidden = true;
  const id = uid("pass");
  const error = h("p", { class: "error", role: "alert" }, message);
  const input = h("input", { id, type: "password", name: "password", autocomplete: "current-password", required: true });
  const form = h(
    "form",
    { class: "login panel" },
    h("h1", {}, "Admin password"),
    h("p", { class: "muted" }, "This gateway's admin API is protected by ADMIN_PASS. The password is kept for this browser tab only."),
    h("div", { class: "field" }, h("label", { for: id }, "Password"), input),
    error,
    h("button", { type: "submit" }, "Unlock"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setPassword(input.value);
    error.textContent = "";
    if (await probe()) {
      unlock();
    } else {
      setPassword("");
      error.textContent = "Wrong password.";
      input.select();
      input.focus();
    }
  });
  main.replaceChildren(form);
  input.focus();
}

function unlock() {
  unlocked = true;
  document.body.dataset.auth = "open";
  nav.hidden = false;
  lock.hidden = !password(); // nothing to lock without ADMIN_PASS
  route();
}

window.addEventListener("hashchange", route);
// The skip link must not change the hash (that is the router's): it moves the focus instead.
document.querySelector(".skip").addEventListener("click", (event) => {
  event.preventDefault();
  (main.querySelector("h1") || main).focus();
});
window.addEventListener("bricks:unauthorized", () => {
  if (unlocked) showLogin("The password was not accepted any more; enter it again.");
});
lock.addEventListener("click", () => {
  setPassword("");
  showLogin();
});

probe().then(
  (ok) => (ok ? unlock() : showLogin()),
  (exc) => main.replaceChildren(h("p", { class: "error", role: "alert" }, `The admin API did not answer: ${exc.message}`)),
);
