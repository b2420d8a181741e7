// The admin JSON API, as the dashboard calls it. The only module that talks to the server.
//
// The password the operator typed is kept in sessionStorage (gone when the tab closes) and sent
// as X-API-KEY. Every write (even a DELETE) carries Content-Type: application/json. A 401 is announced with a
// "bricks:unauthorized" event so the shell can ask for the password again.

const STORE = "bricksllm.adminPass";

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `request failed (${status})`);
    this.status = status;
    this.fields = (problem && problem.fields) || [];
  }
}

export class Unauthorized extends ApiError {}

export function password() {
  return sessionStorage.getItem(STORE) || "";
}

export function setPassword(value) {
  if (value) sessionStorage.setItem(STORE, value);
  else sessionStorage.removeItem(STORE);
}

export async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  const pass = password();
  if (pass) headers["X-API-KEY"] = pass;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (method !== "GET") headers["Content-Type"] = "application/json"; // every write, even DELETE
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: text.slice(0, 200) };
    }
  }
  if (response.status === 401) {
    window.dispatchEvent(new CustomEvent("bricks:unauthorized"));
    throw new Unauthorized(401, data);
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { data, headers: response.headers };
}

const call = (method) => async (path, body) => (await request(method, path, body)).data;

export const api = {
  get: call("GET"),
  post: call("POST"),
  put: call("PUT"),
  patch: call("PATCH"),
  del: call("DELETE"),
};

/** A query string from an object: arrays repeat the parameter, empty values are left out. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    for (const v of Array.isArray(value) ? value : [value]) {
      if (v !== undefined && v !== null && v !== "") q.append(name, String(v));
    }
  }
  const text = q.toString();
  return text ? `?${text}` : "";
}

// The admin API's paths, in one place.
export const paths = {
  keys: "/api/key-management/keys",
  settings: "/api/provider-settings",
  custom: "/api/custom/providers",
  policies: "/api/policies",
  routes: "/api/routes",
  events: "/api/events",
  report: "/api/reporting/events",
  keyUsage: "/api/reporting/keys",
};
