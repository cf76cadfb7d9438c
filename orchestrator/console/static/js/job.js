// A training job: status and timeline, live log, hyperparameters, metric charts (with other
// jobs overlaid), resource use, and its evaluation.

import { get, getOptional, request, enc } from "./api.js";
import { h, table, badge, when, section, fmt, errorBox } from "./ui.js";
import { mountChart, align } from "./charts.js";
import { evaluationSection } from "./evaluation.js";

const POLL_MS = 2500;
const MAX_POINTS = 2000;
const ACTIVE = new Set(["InProgress", "Stopping", "Pending"]);

const jobPath = (name) => `/api/v1/training-jobs/${enc(name)}`;

async function metricsOf(name) {
  const doc = await getOptional(`${jobPath(name)}/metrics`, { MaxPoints: MAX_POINTS });
  return doc ? doc.Metrics || [] : [];
}

function timeline(job) {
  const rows = job.SecondaryStatusTransitions || [];
  if (!rows.length) return h("p", { class: "empty" }, "No transitions yet.");
  return h("ol", { class: "timeline" }, rows.map((t) => h("li", {},
    badge(t.Status), " ", h("time", { datetime: t.StartTime }, when(t.StartTime)),
    t.EndTime ? ` → ${when(t.EndTime)}` : " (now)",
    t.StatusMessage ? h("div", { class: "note" }, t.StatusMessage) : null)));
}

function summary(job) {
  const final = job.FinalMetricDataList || [];
  return h("dl", { class: "facts" },
    h("dt", {}, "Status"), h("dd", { id: "job-status" }, badge(job.TrainingJobStatus), " ", job.SecondaryStatus || ""),
    h("dt", {}, "Algorithm"), h("dd", {}, (job.AlgorithmSpecification || {}).AlgorithmName ||
      (job.HyperParameters || {}).sagemaker_program || "script"),
    h("dt", {}, "Created"), h("dd", {}, when(job.CreationTime)),
    job.TrainingEndTime ? [h("dt", {}, "Ended"), h("dd", {}, when(job.TrainingEndTime))] : null,
    job.FailureReason ? [h("dt", {}, "Failure"), h("dd", { class: "error" }, job.FailureReason)] : null,
    final.length ? [h("dt", {}, "Final metrics"), h("dd", {}, final.map((m) => `${m.MetricName}=${fmt(m.Value)}`).join(", "))] : null);
}

function hyperparameters(job) {
  const hp = Object.entries(job.HyperParameters || {}).filter(([k]) => !k.startsWith("sagemaker_"));
  if (!hp.length) return h("p", { class: "empty" }, "None.");
  return table([{ label: "Name", value: (r) => r[0] }, { label: "Value", value: (r) => r[1] }], hp, { id: "hyperparameters" });
}

function metricCharts(box, byJob) {
  box.replaceChildren();
  const [main] = byJob;
  const algo = main.metrics.filter((m) => !m.Host);
  const usage = main.metrics.filter((m) => m.Host);
  if (!algo.length && !usage.length) box.append(h("p", { class: "empty" }, "No metrics yet."));
  for (const m of algo) {
    const lines = byJob.map((j) => ({ job: j.name, s: j.metrics.find((x) => x.MetricName === m.MetricName && !x.Host) }))
      .filter((l) => l.s);
    mountChart(box, {
      title: m.MetricName, xLabel: "step", yLabel: m.MetricName, labels: lines.map((l) => l.job),
      data: align(lines.map((l) => ({ xs: l.s.Points.map((p) => p.Step), ys: l.s.Points.map((p) => p.Value) }))),
    });
  }
  const names = [...new Set(usage.map((m) => m.MetricName))];
  if (names.length) box.append(h("h3", {}, "Resource use"));
  for (const metric of names) {
    const hosts = usage.filter((m) => m.MetricName === metric);
    mountChart(box, {
      title: `${metric} (${main.name})`, xLabel: "time", yLabel: metric, time: true, labels: hosts.map((m) => m.Host),
      data: align(hosts.map((m) => ({ xs: m.Points.map((p) => Date.parse(p.Timestamp) / 1000), ys: m.Points.map((p) => p.Value) }))),
    });
  }
}

async function comparePicker(name, onChange) {
  const chosen = [];
  const sel = h("select", { "aria-label": "Job to compare", name: "compare" }, h("option", { value: "" }, "compare with…"));
  const doc = await get("/api/v1/training-jobs", { MaxResults: 100 });
  for (const j of doc.TrainingJobSummaries || []) {
    if (j.TrainingJobName !== name) sel.append(h("option", { value: j.TrainingJobName }, j.TrainingJobName));
  }
  const list = h("ul", { class: "chips" });
  const redraw = () => {
    list.replaceChildren(...chosen.map((n) => h("li", {}, n, " ",
      h("button", { type: "button", class: "link", "aria-label": `stop comparing ${n}`, onclick: () => { chosen.splice(chosen.indexOf(n), 1); redraw(); onChange(chosen); } }, "×"))));
  };
  sel.addEventListener("change", () => {
    if (sel.value && !chosen.includes(sel.value)) { chosen.push(sel.value); redraw(); onChange(chosen); }
    sel.value = "";
  });
  return h("div", { class: "compare" }, sel, list);
}

export async function jobPage(main, name, page) {
  let job = await get(jobPath(name));
  const head = h("div", { class: "page-head" }, h("h1", {}, name));
  const actions = h("div", { class: "actions" });
  const facts = h("div", {}, summary(job));
  const tl = h("div", {}, timeline(job));
  const logBox = h("pre", { class: "log", id: "log", tabindex: "0", "aria-label": "job log", "aria-live": "off" });
  const chartsBox = h("div", { class: "charts", id: "metrics" });
  const evalBox = h("div", { id: "evaluation" });
  main.append(head, actions, facts,
    section("Timeline", tl),
    section("Hyperparameters", hyperparameters(job)),
    section("Metrics", h("div", { id: "compare-box" }), chartsBox),
    section("Evaluation", evalBox),
    section("Log", logBox));

  function renderActions() {
    actions.replaceChildren();
    if (ACTIVE.has(job.TrainingJobStatus) && job.TrainingJobStatus !== "Stopping") {
      actions.append(h("button", { type: "button", onclick: async () => { await request("POST", `${jobPath(name)}/stop`); } }, "Stop"));
    }
    if (job.TrainingJobStatus === "Completed") {
      actions.append(h("a", { class: "button", href: `#/jobs/${enc(name)}/deploy` }, "Deploy…"));
    }
  }
  renderActions();

  let compared = [];
  async function drawMetrics() {
    const byJob = [{ name, metrics: await metricsOf(name) }];
    for (const other of compared) byJob.push({ name: other, metrics: await metricsOf(other) });
    metricCharts(chartsBox, byJob);
  }
  const picker = comparePicker(name, (c) => { compared = [...c]; drawMetrics(); })
    .then((el) => document.getElementById("compare-box").append(el));

  // The log is followed from its last LOG_TAIL bytes: a job that printed a million lines
  // opens at its end, not after reading all of it (the API's ``tail``).
  const LOG_TAIL = 256 * 1024;
  let offset = null;
  async function pollLog() {
    for (let i = 0; i < 20; i++) {
      const query = offset === null ? { tail: LOG_TAIL } : { offset };
      const r = await request("GET", `${jobPath(name)}/logs`, { query });
      const text = await r.text();
      const nxt = Number(r.headers.get("X-Next-Offset"));
      if (offset === null) {
        const skipped = Number.isFinite(nxt) ? nxt - new TextEncoder().encode(text).length : 0;
        if (skipped > 0) {
          logBox.append(h("span", { class: "log-skipped" },
            `… the log's first ${skipped.toLocaleString()} bytes are not shown (orch jobs logs ${name} prints them all)\n`));
        }
        offset = 0;
      }
      if (text) {
        const stick = logBox.scrollTop + logBox.clientHeight >= logBox.scrollHeight - 4;
        logBox.append(text);
        if (stick) logBox.scrollTop = logBox.scrollHeight;
      }
      if (!Number.isFinite(nxt) || nxt === offset) break;
      offset = nxt;
      if (!text) break;
    }
  }

  let evaluated = false;
  async function drawEvaluation() {
    if (evaluated || job.TrainingJobStatus !== "Completed") {
      if (!evaluated) evalBox.replaceChildren(h("p", { class: "empty" }, "The evaluation appears when the job completes."));
      return;
    }
    evaluated = true;
    try {
      evalBox.replaceChildren(await evaluationSection(name));
    } catch (e) {
      evalBox.replaceChildren(errorBox(e));
    }
  }

  await Promise.all([drawMetrics(), pollLog().catch(() => {}), drawEvaluation(), picker]);
  if (ACTIVE.has(job.TrainingJobStatus)) {
    let ticks = 0;
    page.every(POLL_MS, async () => {
      if (!ACTIVE.has(job.TrainingJobStatus)) return;
      job = await get(jobPath(name));
      facts.replaceChildren(summary(job));
      tl.replaceChildren(timeline(job));
      renderActions();
      await pollLog();
      ticks += 1;
      if (ticks % 2 === 0 || !ACTIVE.has(job.TrainingJobStatus)) await drawMetrics();
      if (!ACTIVE.has(job.TrainingJobStatus)) await drawEvaluation();
    });
  }
}
