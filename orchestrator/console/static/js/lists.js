// The list pages: filtered, sorted and paged by the list APIs (NameContains, StatusEquals,
// SortBy, SortOrder, MaxResults, NextToken); statuses refreshed every few seconds.

import { get } from "./api.js";
import { h, table, badge, when } from "./ui.js";

const POLL_MS = 3000;
const PAGE = 25;

export const KINDS = {
  jobs: {
    title: "Training jobs", path: "/api/v1/training-jobs", items: "TrainingJobSummaries",
    name: "TrainingJobName", status: "TrainingJobStatus", link: (n) => `#/jobs/${encodeURIComponent(n)}`,
    statuses: ["InProgress", "Completed", "Failed", "Stopping", "Stopped"],
    extra: [{ label: "Detail", value: (r) => r.SecondaryStatus || "" }],
  },
  tuning: {
    title: "Tuning jobs", path: "/api/v1/hyper-parameter-tuning-jobs", items: "HyperParameterTuningJobSummaries",
    name: "HyperParameterTuningJobName", status: "HyperParameterTuningJobStatus",
    statuses: ["InProgress", "Completed", "Failed", "Stopping", "Stopped"],
    extra: [{ label: "Trials", value: (r) => (r.TrainingJobStatusCounters ? Object.values(r.TrainingJobStatusCounters).reduce((a, b) => a + b, 0) : "") }],
  },
  transform: {
    title: "Transform jobs", path: "/api/v1/transform-jobs", items: "TransformJobSummaries",
    name: "TransformJobName", status: "TransformJobStatus",
    statuses: ["InProgress", "Completed", "Failed", "Stopping", "Stopped"], extra: [],
  },
  models: {
    title: "Models", path: "/api/v1/models", items: "Models", name: "ModelName", status: null,
    statuses: [], extra: [],
  },
  endpoints: {
    title: "Endpoints", path: "/api/v1/endpoints", items: "Endpoints", name: "EndpointName",
    status: "EndpointStatus", link: (n) => `#/endpoints/${encodeURIComponent(n)}`,
    statuses: ["Creating", "InService", "Updating", "RollingBack", "Failed", "Deleting", "SystemUpdating"],
    extra: [],
  },
  "data-sources": {
    title: "Data sources", path: "/api/v1/data-sources", items: "DataSources", name: "DataSourceName",
    status: "Status", link: (n) => `#/data-sources/${encodeURIComponent(n)}`,
    statuses: ["PENDING", "INPROGRESS", "COMPLETED", "FAILED", "DELETED"],
    extra: [{ label: "Version", value: (r) => r.Version }, { label: "Rows", value: (r) => r.RowCount }],
  },
};

export async function listPage(main, kind, page) {
  const q = { NameContains: "", StatusEquals: "", SortBy: "CreationTime", SortOrder: "Descending" };
  const tokens = [null]; // tokens[i]: the NextToken that reads page i
  let at = 0;
  let next = null;

  const name = h("input", { type: "search", name: "NameContains", placeholder: "name contains", "aria-label": "Name contains" });
  const status = h("select", { name: "StatusEquals", "aria-label": "Status" },
    h("option", { value: "" }, "any status"), kind.statuses.map((s) => h("option", { value: s }, s)));
  const sort = h("select", { name: "Sort", "aria-label": "Sort by" },
    h("option", { value: "CreationTime:Descending" }, "newest first"),
    h("option", { value: "CreationTime:Ascending" }, "oldest first"),
    h("option", { value: "Name:Ascending" }, "name A→Z"),
    h("option", { value: "Name:Descending" }, "name Z→A"));
  const prev = h("button", { type: "button", disabled: true }, "← Previous");
  const more = h("button", { type: "button", disabled: true }, "Next →");
  const where = h("span", { class: "note" });
  const body = h("div", { id: "list" });
  const form = h("form", { class: "filters", role: "search" }, name, kind.status ? status : null, sort);
  main.append(h("h1", {}, kind.title), form, body, h("div", { class: "pager" }, prev, where, more));

  const columns = [
    { label: "Name", value: (r) => (kind.link ? h("a", { href: kind.link(r[kind.name]) }, r[kind.name]) : r[kind.name]) },
    ...(kind.status ? [{ label: "Status", value: (r) => badge(r[kind.status]) }] : []),
    ...kind.extra,
    { label: "Created", value: (r) => when(r.CreationTime) },
  ];

  let shown = null; // the names in the table, to refresh badges in place (focus stays put)
  async function load() {
    const doc = await get(kind.path, { ...q, MaxResults: PAGE, NextToken: tokens[at] });
    const rows = doc[kind.items] || [];
    next = doc.NextToken || null;
    const names = rows.map((r) => r[kind.name]).join("\n");
    if (names === shown && rows.length && kind.status) {
      body.querySelectorAll("tbody tr").forEach((tr, i) => {
        const old = tr.querySelector("[data-status]");
        if (old && old.dataset.status !== rows[i][kind.status]) old.replaceWith(badge(rows[i][kind.status]));
      });
    } else {
      shown = names;
      body.replaceChildren(rows.length ? table(columns, rows, { "data-kind": kind.items }) : h("p", { class: "empty" }, "Nothing here yet."));
    }
    prev.disabled = at === 0;
    more.disabled = !next;
    where.textContent = `page ${at + 1}`;
  }
  function restart() {
    tokens.length = 1;
    at = 0;
    return load();
  }
  let typing = null;
  name.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => { q.NameContains = name.value.trim(); restart(); }, 250);
  });
  form.addEventListener("submit", (e) => { e.preventDefault(); q.NameContains = name.value.trim(); restart(); });
  status.addEventListener("change", () => { q.StatusEquals = status.value; restart(); });
  sort.addEventListener("change", () => { [q.SortBy, q.SortOrder] = sort.value.split(":"); restart(); });
  more.addEventListener("click", () => { if (!next) return; tokens[at + 1] = next; at += 1; load(); });
  prev.addEventListener("click", () => { if (at === 0) return; at -= 1; load(); });
  await load();
  if (kind.status) page.every(POLL_MS, load);
}
