// An endpoint: variants (weights, instance counts), deployment in progress, live charts of
// invocations, latency percentiles, 4XX/5XX and instances (the monitoring route), conditions,
// and a test-request form.

import { get, request, enc } from "./api.js";
import { h, table, badge, when, section, fmt, errorBox } from "./ui.js";
import { mountChart } from "./charts.js";

const POLL_MS = 3000;
const SPAN_S = 900;
const PERIOD = 10;

// The x axis is always the last SPAN_S seconds, with data or without.
const lastSpan = () => {
  const now = Date.now() / 1000;
  return [now - SPAN_S, now];
};

const epPath = (name) => `/api/v1/endpoints/${enc(name)}`;

function variants(ep) {
  const rows = ep.ProductionVariants || [];
  if (!rows.length) return h("p", { class: "empty" }, "No variants serving yet.");
  return table([
    { label: "Variant", value: (r) => r.VariantName },
    { label: "Weight", value: (r) => `${fmt(r.CurrentWeight)} (desired ${fmt(r.DesiredWeight)})` },
    { label: "Instances", value: (r) => `${r.CurrentInstanceCount} (desired ${r.DesiredInstanceCount})` },
  ], rows, { id: "variants" });
}

function facts(ep) {
  const d = ep.Deployment;
  const last = ep.LastDeployment;
  return h("dl", { class: "facts" },
    h("dt", {}, "Status"), h("dd", { id: "endpoint-status" }, badge(ep.EndpointStatus)),
    h("dt", {}, "Config"), h("dd", {}, ep.CurrentEndpointConfigName || ep.EndpointConfigName),
    h("dt", {}, "Auth"), h("dd", {}, ep.AuthMode === "None" ? "public (no key)" : "API key"),
    ep.FailureReason ? [h("dt", {}, "Failure"), h("dd", { class: "error" }, ep.FailureReason)] : null,
    d ? [h("dt", {}, "Deployment"), h("dd", {}, `${d.Phase} → ${d.TargetEndpointConfigName}: ${fmt(d.TrafficPercent)}% of traffic. ${d.Message}`)] : null,
    last ? [h("dt", {}, "Last deployment"), h("dd", {}, `${last.Result} (${last.TargetEndpointConfigName}, ${when(last.EndTime)}) ${last.Message}`)] : null);
}

function events(ep) {
  const conds = ep.Conditions || [];
  if (!conds.length) return h("p", { class: "empty" }, "No events.");
  return table([
    { label: "Type", value: (c) => c.Type },
    { label: "Status", value: (c) => c.Status },
    { label: "Reason", value: (c) => c.Reason },
    { label: "Message", value: (c) => c.Message },
    { label: "Since", value: (c) => when(c.LastTransitionTime) },
  ], conds);
}

const CHARTS = [
  { title: "Invocations", metric: "Invocations", stats: ["Sum"], id: "invocations" },
  { title: "Model latency (µs)", metric: "ModelLatency", stats: ["p50", "p90", "p99"] },
  { title: "Errors", metric: ["Invocation4XXErrors", "Invocation5XXErrors"], stats: ["Sum"] },
  { title: "Instances (CPU %)", metric: "CPUUtilization", stats: ["Average", "Maximum"] },
];

async function series(name, metric, stats) {
  const end = Math.floor(Date.now() / 1000);
  const doc = await get(`${epPath(name)}/metrics`, {
    MetricName: metric, Statistics: stats, Period: PERIOD, StartTime: end - SPAN_S, EndTime: end,
  });
  const points = (doc.Datapoints || []).slice().sort((a, b) => Date.parse(a.Timestamp) - Date.parse(b.Timestamp));
  const xs = points.map((p) => Date.parse(p.Timestamp) / 1000);
  const cols = stats.map((s) => points.map((p) => {
    const v = s in p ? p[s] : (p.ExtendedStatistics || {})[s];
    return v === undefined ? null : v;
  }));
  return { xs, cols };
}

async function chartData(name, c) {
  if (Array.isArray(c.metric)) {
    const parts = await Promise.all(c.metric.map((m) => series(name, m, c.stats)));
    const xs = [...new Set(parts.flatMap((p) => p.xs))].sort((a, b) => a - b);
    const cols = parts.map((p) => {
      const at = new Map(p.xs.map((x, i) => [x, p.cols[0][i]]));
      return xs.map((x) => (at.has(x) ? at.get(x) : 0));
    });
    return { data: [xs, ...cols], labels: c.metric.map((m) => m.replace("Invocation", "").replace("Errors", "")) };
  }
  const s = await series(name, c.metric, c.stats);
  return { data: [s.xs, ...s.cols], labels: c.stats };
}

function testForm(name) {
  const body = h("textarea", { name: "body", rows: "4", "aria-label": "Request body", id: "invoke-body" }, "");
  const type = h("select", { name: "content_type", "aria-label": "Content type" },
    h("option", { value: "text/csv" }, "text/csv"), h("option", { value: "application/json" }, "application/json"));
  const out = h("pre", { class: "answer", id: "invoke-answer", "aria-live": "polite" });
  const form = h("form", { class: "invoke", id: "invoke-form" },
    h("label", { class: "field" }, h("span", {}, "Content type"), type),
    h("label", { class: "field" }, h("span", {}, "Body"), body),
    h("button", { type: "submit" }, "Send"), out);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    out.textContent = "…";
    try {
      const r = await request("POST", `/endpoints/${enc(name)}/invocations`, {
        body: body.value, headers: { "Content-Type": type.value, Accept: "application/json" },
      });
      const variant = r.headers.get("X-Invoked-Production-Variant");
      out.textContent = `${r.status}${variant ? ` (variant ${variant})` : ""}\n${await r.text()}`;
      out.dataset.status = String(r.status);
    } catch (e) {
      out.textContent = `${e.status}: ${e.message}`;
      out.dataset.status = String(e.status);
    }
  });
  return form;
}

export async function endpointPage(main, name, page) {
  let ep = await get(epPath(name));
  const head = h("div", { class: "page-head" }, h("h1", {}, name),
    h("a", { class: "button", href: `#/endpoints/${enc(name)}/update` }, "Update…"));
  const factsBox = h("div", {}, facts(ep));
  const variantsBox = h("div", {}, variants(ep));
  const eventsBox = h("div", {}, events(ep));
  const chartsBox = h("div", { class: "charts", id: "endpoint-charts" });
  main.append(head, factsBox, section("Variants", variantsBox), section("Traffic (last 15 minutes)", chartsBox),
    section("Test request", testForm(name)), section("Events", eventsBox));

  const drawn = [];
  for (const c of CHARTS) {
    try {
      const { data, labels } = await chartData(name, c);
      const ch = mountChart(chartsBox, { title: c.title, xLabel: "time", time: true, labels, data, xRange: lastSpan, kind: c.metric === "Invocations" ? "bars" : "line" });
      ch.el.id = c.id ? `chart-${c.id}` : "";
      if (c.id === "invocations") {
        ch.el.append(h("p", { class: "note" }, "Total: ", h("span", { id: "invocations-total" }, String(data[1].reduce((a, b) => a + (b || 0), 0)))));
      }
      drawn.push([c, ch]);
    } catch (e) {
      chartsBox.append(h("div", {}, h("h3", {}, c.title), errorBox(e)));
    }
  }
  page.every(POLL_MS, async () => {
    ep = await get(epPath(name));
    factsBox.replaceChildren(facts(ep));
    variantsBox.replaceChildren(variants(ep));
    eventsBox.replaceChildren(events(ep));
    for (const [c, ch] of drawn) {
      const { data } = await chartData(name, c);
      ch.setData(data);
      if (c.id === "invocations") {
        document.getElementById("invocations-total").textContent = String(data[1].reduce((a, b) => a + (b || 0), 0));
      }
    }
  });
}
