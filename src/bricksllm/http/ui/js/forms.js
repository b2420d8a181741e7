// Forms in modal dialogs, described as data: a list of fields, the values to start from, and
// what to do on submit. Problems from the admin API (problem+json `fields`) mark the fields.

import { ApiError } from "./api.js";
import { h, uid } from "./dom.js";

/**
 * A field: {name, label, type, help, required, options: [[value, label]], placeholder,
 *           rows, min, step, autocomplete, apiNames: [...]}
 * types: text (default), password, number, select, checkbox, textarea, secret (text + a
 * "Generate" button). `apiNames` are the admin API's field names this control answers for
 * (default: [name]), used to point at the control when the API refuses a value.
 */
function control(field, value, describedBy) {
  const id = uid(field.name);
  const common = {
    id,
    name: field.name,
    required: field.required,
    placeholder: field.placeholder,
    autocomplete: field.autocomplete || "off",
    "aria-describedby": describedBy,
  };
  let input;
  if (field.type === "select") {
    input = h(
      "select",
      common,
      (field.options || []).map(([v, label]) => h("option", { value: v, selected: String(v) === String(value ?? "") }, label)),
    );
  } else if (field.type === "textarea") {
    input = h("textarea", { ...common, rows: field.rows || 5, spellcheck: "false" });
    input.value = value ?? "";
  } else if (field.type === "checkbox") {
    input = h("input", { ...common, type: "checkbox", checked: Boolean(value) });
  } else {
    const type = field.type === "secret" ? "text" : field.type || "text";
    input = h("input", { ...common, type, min: field.min, step: field.step, value: value ?? "" });
  }
  return { id, input };
}

function fieldBlock(field, value) {
  const helpId = field.help ? uid("help") : undefined;
  const { id, input } = control(field, value, helpId);
  const help = field.help ? h("p", { class: "help", id: helpId }, field.help) : null;
  if (field.type === "checkbox") {
    return { input, element: h("div", { class: "field check" }, input, h("label", { for: id }, field.label), help) };
  }
  const extra =
    field.type === "secret"
      ? h("button", { type: "button", class: "quiet", onclick: () => { input.value = randomSecret(); input.focus(); } }, "Generate")
      : null;
  const body = extra ? h("div", { class: "row" }, input, extra) : input;
  return { input, element: h("div", { class: "field" }, h("label", { for: id }, field.label), body, help) };
}

/** A random key secret: 32 bytes from the browser's CSPRNG, base64url, with a recognisable prefix. */
export function randomSecret() {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const b64 = btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return `bk-${b64}`;
}

function readValues(fields, inputs) {
  const values = {};
  for (const f of fields) {
    const input = inputs[f.name];
    if (f.type === "checkbox") values[f.name] = input.checked;
    else if (f.type === "number") values[f.name] = input.value === "" ? 0 : Number(input.value);
    else values[f.name] = input.value;
  }
  return values;
}

function markInvalid(fields, inputs, apiFields) {
  let first = null;
  for (const f of fields) {
    const names = f.apiNames || [f.name];
    const bad = apiFields.some((a) => names.some((n) => a === n || a.startsWith(`${n}.`) || a.startsWith(`${n}[`)));
    inputs[f.name].setAttribute("aria-invalid", bad ? "true" : "false");
    if (bad && !first) first = inputs[f.name];
  }
  return first;
}

/**
 * Open a modal form. `onSubmit(values)` does the write; when it throws, the dialog stays open
 * with the message (and the offending fields marked). Resolves with the result of onSubmit, or
 * null when cancelled.
 */
export function openForm({ title, fields, values = {}, submitLabel = "Save", intro = null, onSubmit }) {
  return new Promise((resolve) => {
    const inputs = {};
    const blocks = fields.map((f) => {
      const { input, element } = fieldBlock(f, values[f.name]);
      inputs[f.name] = input;
      return element;
    });
    const error = h("p", { class: "error", role: "alert" });
    const titleId = uid("dlg");
    let result = null;
    const submit = h("button", { type: "submit" }, submitLabel);
    const form = h(
      "form",
      { method: "dialog", novalidate: true },
      h("h2", { id: titleId }, title),
      intro,
      blocks,
      error,
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Cancel"),
        submit,
      ),
    );
    const dialog = h("dialog", { "aria-labelledby": titleId }, form);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const missing = fields.filter((f) => f.required && f.type !== "checkbox" && !inputs[f.name].value.trim());
      if (missing.length) {
        error.textContent = `Required: ${missing.map((f) => f.label).join(", ")}`;
        markInvalid(fields, inputs, missing.flatMap((f) => f.apiNames || [f.name]));
        inputs[missing[0].name].focus();
        return;
      }
      submit.disabled = true;
      error.textContent = "";
      try {
        result = await onSubmit(readValues(fields, inputs));
        dialog.close();
      } catch (exc) {
        error.textContent = exc instanceof ApiError || exc instanceof SyntaxError || exc instanceof TypeError ? exc.message : String(exc);
        const first = markInvalid(fields, inputs, exc.fields || []);
        if (first) first.focus();
      } finally {
        submit.disabled = false;
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(result);
    });
    document.body.append(dialog);
    dialog.showModal();
    const firstInput = form.querySelector("input, select, textarea");
    if (firstInput) firstInput.focus();
  });
}

/** Ask before something irreversible. Resolves true when confirmed. */
export function confirmAction({ title, text, confirmLabel = "Confirm", danger = true }) {
  return new Promise((resolve) => {
    let ok = false;
    const titleId = uid("dlg");
    const yes = h("button", { type: "button", class: danger ? "danger" : null, onclick: () => { ok = true; dialog.close(); } }, confirmLabel);
    const dialog = h(
      "dialog",
      { "aria-labelledby": titleId, role: "alertdialog" },
      h("h2", { id: titleId }, title),
      h("p", {}, text),
      h("div", { class: "buttons" }, h("button", { type: "button", class: "quiet", onclick: () => dialog.close() }, "Cancel"), yes),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(ok);
    });
    document.body.append(dialog);
    dialog.showModal();
    yes.focus();
  });
}

/** Split "a, b,c" into ["a", "b", "c"]. */
export function list(text) {
  return String(text || "").split(",").map((s) => s.trim()).filter(Boolean);
}

/** Parse a JSON text field; empty text gives `fallback`. Errors name the field. */
export function json(text, label, fallback) {
  if (!String(text || "").trim()) return fallback;
  try {
    return JSON.parse(text);
  } catch (exc) {
    throw new SyntaxError(`${label}: not valid JSON (${exc.message})`);
  }
}
