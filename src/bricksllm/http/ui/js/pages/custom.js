// Custom providers: upstreams described as data (where to send a path, where the model, the
// prompt and the completion are in the JSON). Route configs are edited as JSON: they are a
// list of objects with many optional fields, which a JSON text shows most plainly.

import { api, paths } from "../api.js";
import { collectionPage } from "../collection.js";
import { h } from "../dom.js";
import { dateTime } from "../format.js";
import { json } from "../forms.js";

const TEMPLATE = [
  {
    path: "/chat/completions",
    target_url: "https://llm.example.com/v1/chat/completions",
    model_location: "model",
    request_prompt_location: "messages.#.content",
    response_completion_location: "choices.#.message.content",
    stream_location: "stream",
    stream_end_word: "[DONE]",
    stream_response_completion_location: "choices.#.delta.content",
  },
];

export const render = collectionPage({
  title: "Custom providers",
  noun: "custom provider",
  intro: "Upstreams the gateway does not know by itself, described by their routes.",
  rowLabel: (row) => row.provider,
  load: () => api.get(paths.custom),
  columns: [
    { label: "Provider", cell: (r) => h("strong", {}, r.provider) },
    { label: "Routes", cell: (r) => r.route_configs.map((rc) => h("div", {}, h("code", {}, rc.path), " → ", rc.target_url)) },
    { label: "Credential entry", cell: (r) => r.authentication_param || "–" },
    { label: "Updated", cell: (r) => dateTime(r.updated_at) },
  ],
  form: (row) => ({
    fields: [
      row ? null : { name: "provider", label: "Name", required: true, help: "Unique, no spaces; settings use it as their provider" },
      { name: "authentication_param", label: "Credential entry", help: "The provider setting entry that holds the credential, e.g. apikey" },
      {
        name: "route_configs",
        label: "Route configs (JSON)",
        type: "textarea",
        rows: 12,
        required: !row,
        help: row ? "Configs are matched by path: given fields replace, new paths are added." : "A list of route configs.",
      },
    ].filter(Boolean),
    values: row
      ? { authentication_param: row.authentication_param, route_configs: JSON.stringify(row.route_configs, null, 2) }
      : { route_configs: JSON.stringify(TEMPLATE, null, 2) },
  }),
  create: (v) =>
    api.post(paths.custom, {
      provider: v.provider,
      authentication_param: v.authentication_param,
      route_configs: json(v.route_configs, "Route configs", []),
    }),
  update: (row, v) =>
    api.patch(`${paths.custom}/${encodeURIComponent(row.id)}`, {
      authentication_param: v.authentication_param,
      route_configs: json(v.route_configs, "Route configs", []),
    }),
});
