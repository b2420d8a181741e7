// A page for one collection of the admin API, described as data: how to load the rows, the
// table's columns, the form for create and edit, and extra row actions. Keys, provider
// settings and custom providers are such pages; a new admin collection (policies, routes)
// needs only a new description and a line in main.js.
//
// description = {
//   title, intro, noun,                 "Custom providers", text under the title, "custom provider"
//   load: async () => rows,
//   columns: [{label, cell(row), num?}],
//   rowLabel(row),                      how a row is named in buttons ("Edit <name>")
//   form(row | null) -> {fields, values, intro?} (or a promise of it),  row null = create
//   create: async (values) -> row,      omit for read-only collections
//   update: async (row, values) -> row, omit when rows cannot be edited
//   actions: [{label, when?(row), danger?, run: async (row) -> message?}],
// }

import { h, heading, table, toast } from "./dom.js";
import { openForm } from "./forms.js";

export function collectionPage(description) {
  return async function render(main) {
    const d = description;
    const body = h("div", { class: "collection-body" });
    const refresh = async () => {
      const rows = await d.load();
      body.replaceChildren(listing(d, rows, refresh));
    };
    const create = d.create
      ? h(
          "button",
          {
            type: "button",
            onclick: async () => {
              const { fields, values, intro } = await d.form(null);
              const created = await openForm({
                title: `New ${d.noun}`,
                fields,
                values,
                intro,
                submitLabel: "Create",
                onSubmit: (v) => d.create(v),
              });
              if (created) {
                toast(`Created ${d.noun}`);
                await refresh();
              }
            },
          },
          `New ${d.noun}`,
        )
      : null;
    main.append(heading(d.title, create), d.intro ? h("p", { class: "lead" }, d.intro) : null, body);
    await refresh();
  };
}

function listing(d, rows, refresh) {
  const label = (row) => (d.rowLabel ? d.rowLabel(row) : "");
  const actions = {
    label: "Actions",
    cell: (row) =>
      h(
        "div",
        { class: "actions" },
        d.update
          ? h(
              "button",
              {
                type: "button",
                class: "quiet",
                "aria-label": `Edit ${label(row)}`.trim(),
                onclick: async () => {
                  const { fields, values, intro } = await d.form(row);
                  const saved = await openForm({
                    title: `Edit ${d.noun} ${label(row)}`.trim(),
                    fields,
                    values,
                    intro,
                    onSubmit: (v) => d.update(row, v),
                  });
                  if (saved) {
                    toast(`Saved ${d.noun}`);
                    await refresh();
                  }
                },
              },
              "Edit",
            )
          : null,
        (d.actions || [])
          .filter((a) => !a.when || a.when(row))
          .map((a) =>
            h(
              "button",
              {
                type: "button",
                class: a.danger ? "danger" : "quiet",
                "aria-label": `${a.label} ${label(row)}`.trim(),
                onclick: async () => {
                  const message = await a.run(row);
                  if (message) {
                    toast(message);
                    await refresh();
                  }
                },
              },
              a.label,
            ),
          ),
      ),
  };
  const columns = d.update || d.actions ? [...d.columns, actions] : d.columns;
  return table(columns, rows, { caption: d.title, empty: `No ${d.noun}s yet.` });
}
