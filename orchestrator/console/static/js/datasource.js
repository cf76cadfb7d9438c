// A data source (Amazon ML's): its source, versions and their snapshot jobs, the schema with
// editable types and target (PATCH, no new snapshot), the data insights (missing and invalid
// shares, distributions, correlation with the target, warnings), and a refresh that takes a
// new snapshot, its status followed live.

import { get, json, enc, ApiError } from "./api.js";
import { h, table, badge, when, section, fmt, errorBox, showFormError, clearFormErrors } from "./ui.js";
import { mountChart } from "./charts.js";

const POLL_MS = 2000;
const ACTIVE = new Set(["PENDING", "INPROGRESS"]);
const TYPES = ["NUMERIC", "BINARY", "CATEGORICAL", "TEXT"];
const TOP_SHOWN = 8;

const dsPath = (name) => `/api/v1/data-sources/${enc(name)}`;

function pct(share) {
  return typeof share === "number" ? `${(share * 100).toFixed(1)}%` : "";
}

function bytes(n) {
  if (typeof n !== "number") return "";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u += 1; }
  return u ? `${v.toFixed(1)} ${units[u]}` : `${v} B`;
}

function source(ds) {
  const spec = ds.DataSpec || {};
  if (spec.Sql) {
    const db = spec.Sql.DatabaseInformation || {};
    const port = db.Port ? `:${db.Port}` : "";
    return [
      h("dt", {}, "Source"), h("dd", { id: "ds-source" }, `${db.Engine}://${db.Host}${port}/${db.DatabaseName}`),
      h("dt", {}, "Query"), h("dd", {}, h("pre", { class: "answer", id: "ds-query" }, spec.Sql.SelectSqlQuery)),
    ];
  }
  if (spec.S3) {
    return [h("dt", {}, "Source"), h("dd", { id: "ds-source" }, `${spec.S3.DataLocationS3} (${spec.S3.DataFormat || "CSV"})`)];
  }
  return null;
}

function summary(ds) {
  const schema = ds.DataSchema || {};
  return h("dl", { class: "facts" },
    h("dt", {}, "Status"), h("dd", { id: "ds-status" }, badge(ds.Status)),
    h("dt", {}, "Version"), h("dd", {}, String(ds.Version),
      ds.CompletedVersion && ds.CompletedVersion !== ds.Version ? ` (latest completed: ${ds.CompletedVersion})` : ""),
    source(ds),
    h("dt", {}, "Target"), h("dd", { id: "ds-target" }, schema.TargetAttributeName || ds.TargetAttributeName || "none"),
    typeof schema.RowCount === "number" ? [h("dt", {}, "Rows"), h("dd", {}, String(schema.RowCount))] : null,
    h("dt", {}, "Created"), h("dd", {}, when(ds.CreationTime)),
    ds.Message ? [h("dt", {}, "Message"), h("dd", { id: "ds-message", class: ds.Status === "FAILED" ? "error" : null }, ds.Message)] : null);
}

function versions(ds) {
  const rows = [...(ds.Versions || [])].reverse();
  if (!rows.length) return h("p", { class: "empty" }, "No snapshot yet.");
  return table([
    { label: "Version", value: (v) => v.Version },
    { label: "Status", value: (v) => badge(v.Status) },
    { label: "Snapshot job", value: (v) => (v.SnapshotJobName ? h("a", { href: `#/jobs/${enc(v.SnapshotJobName)}` }, v.SnapshotJobName) : "") },
    { label: "Rows", value: (v) => v.RowCount },
    { label: "Size", value: (v) => bytes(v.DataSizeInBytes) },
    { label: "Created", value: (v) => when(v.CreatedAt) },
    { label: "Finished", value: (v) => when(v.FinishedAt) },
    { label: "Failure", value: (v) => (v.FailureReason ? h("span", { class: "error" }, v.FailureReason) : "") },
  ], rows, { id: "versions" });
}

// A share as a bar (0..1) and its percentage.
function shareBar(share, kind) {
  const w = Math.max(0, Math.min(1, share || 0)) * 100;
  return h("span", { class: "share" },
    h("span", { class: `bar bar-${kind}`, role: "img", "aria-label": `${kind} ${pct(share || 0)}` },
      h("span", { style: `width: ${w.toFixed(1)}%` })),
    h("span", { "data-share": kind }, pct(share || 0)));
}

// Counts as horizontal bars: the top categories, or the top words.
function hbars(items, other, label) {
  const shown = items.slice(0, TOP_SHOWN);
  const max = Math.max(1, ...shown.map((c) => c.Count), other || 0);
  const row = (name, count, cls) => h("li", { class: cls || null },
    h("span", { class: "hbar-label", title: name }, name),
    h("span", { class: "bar" }, h("span", { style: `width: ${((count / max) * 100).toFixed(1)}%` })),
    h("span", { class: "hbar-count" }, String(count)));
  return h("ul", { class: "hbars", "aria-label": label },
    shown.map((c) => row(String(c.Value), c.Count)),
    other ? row("(other)", other, "other") : null);
}

function centers(edges) {
  return edges.slice(0, -1).map((e, i) => (e + edges[i + 1]) / 2);
}

function histogram(box, title, hist) {
  if (!hist || !hist.Edges || hist.Edges.length < 2) return;
  mountChart(box, {
    title, kind: "bars", xLabel: "value", yLabel: "rows", labels: ["rows"], height: 160,
    data: [centers(hist.Edges), hist.Counts], yRange: [0, Math.max(1, ...hist.Counts) * 1.1],
  });
}

function correlation(a) {
  const c = a.TargetCorrelation;
  if (!c || typeof c.Value !== "number") return "";
  return `${c.Value >= 0 ? "+" : ""}${c.Value.toFixed(2)} (${c.Method})`;
}

function attributeCard(a, target, warnings) {
  const isTarget = a.AttributeName === target;
  const mine = warnings.filter((w) => w.AttributeName === a.AttributeName);
  const card = h("article", { class: mine.length ? "attr warned" : "attr", "data-attribute": a.AttributeName },
    h("h3", {}, a.AttributeName, " ", h("span", { class: "badge" }, a.AttributeType), isTarget ? h("span", { class: "note" }, " target") : null),
    mine.length ? h("p", { class: "attr-warnings" }, `⚠ ${mine.map((w) => w.Code).join(", ")}`) : null);
  card.append(h("dl", { class: "facts" },
    h("dt", {}, "Missing"), h("dd", {}, shareBar(a.MissingShare, "missing"), a.MissingCount ? ` ${a.MissingCount} rows` : ""),
    h("dt", {}, "Invalid"), h("dd", {}, shareBar(a.InvalidShare, "invalid"), a.InvalidCount ? ` ${a.InvalidCount} rows` : ""),
    h("dt", {}, "Distinct"), h("dd", { "data-distinct": "" }, `${a.DistinctCountApproximate ? "≈" : ""}${fmt(a.DistinctCount)}`),
    !isTarget && a.TargetCorrelation ? [h("dt", {}, "Correlation with target"), h("dd", { "data-correlation": "" }, correlation(a))] : null,
    a.Numeric ? [h("dt", {}, "Range"), h("dd", {},
      `${fmt(a.Numeric.Min)} … ${fmt(a.Numeric.Max)}; mean ${fmt(a.Numeric.Mean)}, median ${fmt(a.Numeric.Median)}, std ${fmt(a.Numeric.Std)}`)] : null,
    a.Text ? [h("dt", {}, "Words"), h("dd", {}, `${typeof a.Text.MeanWords === "number" ? a.Text.MeanWords.toFixed(1) : ""} on average`)] : null));
  const dist = h("div", { class: "distribution" });
  card.append(dist);
  return { card, draw: () => {
    if (a.Numeric && a.Numeric.Histogram) histogram(dist, `${a.AttributeName} histogram`, a.Numeric.Histogram);
    else if (a.Categories) dist.append(h("p", { class: "note" }, "Top categories"), hbars(a.Categories.Top || [], a.Categories.OtherCount, `${a.AttributeName} top categories`));
    else if (a.Text && a.Text.TopWords) dist.append(h("p", { class: "note" }, "Top words"), hbars(a.Text.TopWords, 0, `${a.AttributeName} top words`));
  } };
}

function warningsList(doc) {
  const warnings = doc.Warnings || [];
  if (!warnings.length) return h("p", { class: "note", id: "warnings" }, "No warnings.");
  return h("ul", { class: "warnings", id: "warnings", role: "status" }, warnings.map((w) => h("li", { "data-code": w.Code },
    h("strong", {}, w.Code), " ", w.Message)));
}

function targetBox(doc, drawers) {
  const t = doc.Target;
  if (!t) return h("p", { class: "empty" }, "No target attribute: pick one in the schema.");
  const box = h("div", { id: "target-distribution" },
    h("p", {}, `${doc.TargetAttributeName || t.AttributeName || ""} (${t.AttributeType})`,
      t.MissingCount ? `, ${t.MissingCount} rows missing` : ""));
  const d = t.Distribution;
  if (!d) box.append(h("p", { class: "empty" }, "No values."));
  else if (d.Histogram) drawers.push(() => histogram(box, "target histogram", d.Histogram));
  else if (d.Top) box.append(hbars(d.Top, d.OtherCount, "target classes"));
  return box;
}

export async function dataSourcePage(main, name, page) {
  let ds = await get(dsPath(name));
  let picked = null; // the version shown; null: the latest completed
  let awaiting = null; // the version a refresh asked for, until it finishes
  const head = h("div", { class: "page-head" }, h("h1", {}, name));
  const refresh = h("button", { type: "button", id: "refresh" }, "Refresh snapshot");
  const picker = h("select", { id: "version", name: "version", "aria-label": "Version shown" });
  const live = h("span", { id: "refresh-status", "aria-live": "polite" });
  const actionError = h("div", {});
  const facts = h("div", {}, summary(ds));
  const versionsBox = h("div", {}, versions(ds));
  const schemaBox = h("div", { id: "schema-box" });
  const insightsBox = h("div", { id: "insights" });
  main.append(head, h("div", { class: "actions ds-actions" }, refresh, h("label", { for: "version" }, "Version"), picker, live),
    actionError, facts,
    section("Versions", versionsBox),
    section("Schema", schemaBox),
    section("Insights", insightsBox));

  function fillPicker() {
    const want = picked === null ? "" : String(picked);
    picker.replaceChildren(h("option", { value: "" }, "latest completed"),
      ...[...(ds.Versions || [])].reverse().map((v) => h("option", { value: String(v.Version) }, `${v.Version} (${v.Status})`)));
    picker.value = want;
  }

  function showLive() {
    if (awaiting === null) { live.replaceChildren(); return; }
    const v = (ds.Versions || []).find((x) => x.Version === awaiting);
    live.replaceChildren(`Version ${awaiting}: `, v ? badge(v.Status) : badge("REQUESTED"));
  }

  function schemaTable(schema) {
    const attrs = schema.Attributes || [];
    const target = h("select", { id: "target", name: "TargetAttributeName", "data-field": "TargetAttributeName" },
      schema.TargetAttributeName ? null : h("option", { value: "" }, "none"),
      attrs.map((a) => h("option", { value: a.AttributeName }, a.AttributeName)));
    target.value = schema.TargetAttributeName || "";
    const form = h("form", { id: "schema-form" });
    const patch = async (body, control, previous) => {
      clearFormErrors(form);
      control.disabled = true;
      try {
        await json("PATCH", dsPath(name), { json: body });
        await reload();
      } catch (e) {
        control.value = previous;
        control.disabled = false;
        if (e instanceof ApiError && e.status === 401) return;
        showFormError(form, e);
      }
    };
    target.addEventListener("change", () => patch({ TargetAttributeName: target.value }, target, schema.TargetAttributeName || ""));
    const typeSelect = (a) => {
      const sel = h("select", { name: `type-${a.AttributeName}`, "data-field": `AttributeTypes.${a.AttributeName}`, "aria-label": `${a.AttributeName} type` },
        TYPES.map((t) => h("option", { value: t }, t)));
      sel.value = a.AttributeType;
      sel.addEventListener("change", () => patch({ AttributeTypes: { [a.AttributeName]: sel.value } }, sel, a.AttributeType));
      const edited = a.InferredType && a.InferredType !== a.AttributeType;
      return h("span", { class: "field" }, sel, " ",
        h("span", { class: edited ? "edited" : "note", "data-edited": String(Boolean(edited)) }, edited ? `edited (inferred ${a.InferredType})` : "inferred"));
    };
    form.addEventListener("submit", (e) => e.preventDefault());
    form.append(h("label", { class: "field" }, h("span", {}, "Target attribute"), target),
      table([
        { label: "Attribute", value: (a) => (a.AttributeName === schema.TargetAttributeName ? h("span", {}, a.AttributeName, h("span", { class: "note" }, " (target)")) : a.AttributeName) },
        { label: "Type", value: typeSelect },
        { label: "Source type", value: (a) => a.SourceType },
        { label: "Why", value: (a) => h("span", { class: "reasons" }, (a.Reasons || []).join("; ")) },
      ], attrs, { id: "schema" }),
      h("p", { class: "note" }, "A type or target changed here applies to training from this data source; it takes no new snapshot."));
    return form;
  }

  function renderSchema() {
    const schema = ds.DataSchema;
    if (!schema) {
      schemaBox.replaceChildren(h("p", { class: "empty" }, ACTIVE.has(ds.Status) ?
        "The schema appears when the snapshot completes." : "This version has no schema."));
      return;
    }
    schemaBox.replaceChildren(h("p", { class: "note" }, `Version ${shownVersion()}: ${schema.RowCount} rows`), schemaTable(schema));
  }

  function shownVersion() {
    return picked !== null ? picked : ds.CompletedVersion;
  }

  async function renderInsights() {
    if (!ds.DataSchema) {
      insightsBox.replaceChildren(h("p", { class: "empty" }, "The insights appear when a snapshot completes."));
      return;
    }
    let doc;
    try {
      doc = await get(`${dsPath(name)}/insights`, { version: picked });
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) throw e;
      insightsBox.replaceChildren(errorBox(e));
      return;
    }
    const drawers = [];
    const cards = (doc.Attributes || []).map((a) => attributeCard(a, doc.TargetAttributeName, doc.Warnings || []));
    const target = targetBox(doc, drawers);
    insightsBox.replaceChildren(
      h("h3", {}, `Warnings (${(doc.Warnings || []).length})`), warningsList(doc),
      h("h3", {}, "Target"), target,
      h("h3", {}, `Attributes (${doc.RowCount} rows)`), h("div", { class: "attrs" }, cards.map((c) => c.card)));
    // Charts measure their box: draw once the cards are in the page.
    drawers.forEach((d) => d());
    cards.forEach((c) => c.draw());
  }

  async function reload() {
    ds = await get(dsPath(name), { version: picked });
    facts.replaceChildren(summary(ds));
    versionsBox.replaceChildren(versions(ds));
    fillPicker();
    showLive();
    renderSchema();
    await renderInsights();
  }

  function busy() {
    const latest = (ds.Versions || []).at(-1);
    return ACTIVE.has(ds.Status) || (latest && ACTIVE.has(latest.Status)) || (awaiting !== null && ds.Version < awaiting);
  }

  picker.addEventListener("change", async () => {
    picked = picker.value ? Number(picker.value) : null;
    actionError.replaceChildren();
    try { await reload(); } catch (e) { if (!(e instanceof ApiError && e.status === 401)) actionError.replaceChildren(errorBox(e)); }
  });

  refresh.addEventListener("click", async () => {
    actionError.replaceChildren();
    refresh.disabled = true;
    try {
      const doc = await json("POST", `${dsPath(name)}/refresh`);
      awaiting = doc.Version;
      showLive();
    } catch (e) {
      if (!(e instanceof ApiError && e.status === 401)) actionError.replaceChildren(errorBox(e));
    } finally {
      refresh.disabled = false;
    }
  });

  fillPicker();
  renderSchema();
  await renderInsights();

  // While a snapshot is taken: its status every 2 s; the schema and insights once it is done.
  page.every(POLL_MS, async () => {
    if (!busy()) return;
    const before = ds.CompletedVersion;
    ds = await get(dsPath(name), { version: picked });
    facts.replaceChildren(summary(ds));
    versionsBox.replaceChildren(versions(ds));
    fillPicker();
    showLive();
    if (!busy() || ds.CompletedVersion !== before) {
      renderSchema();
      await renderInsights();
    }
  });
}
