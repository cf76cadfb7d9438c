// A job's evaluation (evaluation.json): binary (score histogram, threshold slider computing
// the confusion matrix from the test scores in the browser, ROC and PR with the threshold
// marked), multiclass (confusion heat map, per-class scores) and regression (residuals,
// predicted vs actual, RMSE vs the baseline's).

import { getOptional, enc } from "./api.js";
import { h, table, fmt } from "./ui.js";
import { mountChart, heatmap, dotAt, vlineAt } from "./charts.js";

const METRIC_NAMES = ["accuracy", "precision", "recall", "f1", "false_positive_rate", "auc", "log_loss",
  "rmse", "mse", "mae", "r2", "baseline_rmse", "macro_f1", "threshold"];

function lowerBound(sorted, x) {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < x) lo = mid + 1; else hi = mid;
  }
  return lo;
}

// Counts at a threshold (predicted positive when score >= threshold); 0 where undefined.
export function atThreshold(neg, pos, threshold) {
  const tp = pos.length - lowerBound(pos, threshold);
  const fp = neg.length - lowerBound(neg, threshold);
  const fn = pos.length - tp;
  const tn = neg.length - fp;
  const ratio = (a, b) => (b ? a / b : 0);
  const precision = ratio(tp, tp + fp);
  const recall = ratio(tp, tp + fn);
  return {
    threshold, true_positives: tp, false_positives: fp, true_negatives: tn, false_negatives: fn,
    precision, recall, accuracy: ratio(tp + tn, tp + tn + fp + fn), false_positive_rate: ratio(fp, fp + tn),
    f1: ratio(2 * precision * recall, precision + recall), confusion_matrix: [[tn, fp], [fn, tp]],
  };
}

function metricsTable(evaluation) {
  const splits = ["validation", "test"].filter((s) => evaluation[s]);
  const names = METRIC_NAMES.filter((n) => splits.some((s) => typeof evaluation[s][n] === "number"));
  if (!names.length) return null;
  return table([{ label: "Metric", value: (n) => n }, ...splits.map((s) => ({ label: s, value: (n) => evaluation[s][n] }))],
    names, { id: "evaluation-metrics" });
}

function centers(edges) {
  return edges.slice(0, -1).map((e, i) => (e + edges[i + 1]) / 2);
}

function sortedBy(points, i) {
  return [...points].sort((a, b) => a[i] - b[i] || a[1 - i] - b[1 - i]);
}

async function binary(box, name, split, analysis, evaluation) {
  const scores = await getOptional(`/api/v1/training-jobs/${enc(name)}/evaluation/scores`, { Split: split });
  const start = Number.isFinite(evaluation.threshold) ? evaluation.threshold : 0.5;
  const slider = h("input", { type: "range", min: "0", max: "1", step: "0.01", value: String(Math.round(start * 100) / 100), id: "threshold", name: "threshold", "aria-describedby": "threshold-value" });
  const shown = h("output", { id: "threshold-value", for: "threshold" });
  const numbers = h("dl", { class: "facts", id: "threshold-metrics" });
  const cmBox = h("div", { id: "threshold-confusion" });
  box.append(h("div", { class: "slider" }, h("label", { for: "threshold" }, "Threshold"), slider, shown),
    numbers, cmBox);
  let neg = [];
  let pos = [];
  if (scores) {
    scores.Labels.forEach((l, i) => (Number(l) === 1 ? pos : neg).push(scores.Scores[i]));
    neg.sort((a, b) => a - b);
    pos.sort((a, b) => a - b);
  } else {
    box.append(h("p", { class: "note" }, "This server does not give the test scores: the threshold marks the charts only."));
  }
  let current = null;
  const charts = [];
  if (analysis.histogram) {
    const hist = analysis.histogram;
    charts.push(mountChart(box, {
      title: "Score histogram", kind: "bars", xLabel: "score", yLabel: "rows", labels: ["negative", "positive"],
      colors: ["#2563eb", "#dc2626"], data: [centers(hist.edges), hist.negative, hist.positive], legend: true,
      draw: (u) => vlineAt(u, Number(slider.value)),
    }));
  }
  if (analysis.roc) {
    const roc = sortedBy(analysis.roc, 0);
    charts.push(mountChart(box, {
      title: `ROC (AUC ${fmt(analysis.auc)})`, xLabel: "false positive rate", yLabel: "true positive rate", labels: ["ROC"],
      data: [roc.map((p) => p[0]), roc.map((p) => p[1])], xRange: [0, 1], yRange: [0, 1],
      draw: (u) => current && dotAt(u, current.false_positive_rate, current.recall, `t=${slider.value}`),
    }));
  }
  if (analysis.pr) {
    const pr = sortedBy(analysis.pr, 0);
    charts.push(mountChart(box, {
      title: "Precision–recall", xLabel: "recall", yLabel: "precision", labels: ["PR"],
      data: [pr.map((p) => p[0]), pr.map((p) => p[1])], xRange: [0, 1], yRange: [0, 1],
      draw: (u) => current && current.true_positives + current.false_positives > 0 && dotAt(u, current.recall, current.precision, `t=${slider.value}`),
    }));
  }
  if (typeof analysis.auc === "number") box.append(h("p", { id: "auc" }, `AUC: ${fmt(analysis.auc)}`));
  function update() {
    const t = Number(slider.value);
    shown.textContent = t.toFixed(2);
    if (scores) {
      current = atThreshold(neg, pos, t);
      numbers.replaceChildren(...["precision", "recall", "accuracy", "false_positive_rate", "f1"].flatMap((k) => [
        h("dt", {}, k.replaceAll("_", " ")),
        h("dd", { "data-metric": k, "data-value": String(current[k]) }, current[k].toFixed(4)),
      ]));
      cmBox.replaceChildren(heatmap(["0", "1"], current.confusion_matrix));
    }
    charts.forEach((c) => c.redraw());
  }
  slider.addEventListener("input", update);
  update();
}

function multiclass(box, analysis) {
  box.append(h("h3", {}, "Confusion matrix"), heatmap(analysis.labels, analysis.confusion_matrix));
  box.append(h("h3", {}, "Per class"), table(
    ["label", "precision", "recall", "f1", "support"].map((k) => ({ label: k, value: (r) => r[k] })),
    analysis.per_class || [], { id: "per-class" }));
}

function regression(box, analysis) {
  if (typeof analysis.rmse === "number") {
    box.append(table([{ label: "", value: (r) => r[0] }, { label: "RMSE", value: (r) => r[1] }],
      [["model", analysis.rmse], ["baseline (predict the mean)", analysis.baseline_rmse]], { id: "rmse" }));
  }
  if (analysis.residuals) {
    mountChart(box, {
      title: "Residuals (actual − predicted)", kind: "bars", xLabel: "residual", yLabel: "rows", labels: ["rows"],
      data: [centers(analysis.residuals.edges), analysis.residuals.counts],
    });
  }
  if (analysis.scatter) {
    const pts = sortedBy(analysis.scatter, 0);
    mountChart(box, {
      title: "Predicted vs actual", kind: "points", xLabel: "actual", yLabel: "predicted", labels: ["predicted"],
      data: [pts.map((p) => p[0]), pts.map((p) => p[1])],
    });
  }
}

export async function evaluationSection(name) {
  const evaluation = await getOptional(`/api/v1/training-jobs/${enc(name)}/evaluation`);
  const box = h("div", {});
  if (!evaluation) {
    box.append(h("p", { class: "empty" }, "This job wrote no evaluation."));
    return box;
  }
  box.append(h("p", {}, `Predictor: ${evaluation.predictor_type || "?"}`));
  const mt = metricsTable(evaluation);
  if (mt) box.append(mt);
  const splits = ["test", "validation"].filter((s) => evaluation[s] && evaluation[s].analysis);
  if (!splits.length) return box;
  const pick = h("select", { "aria-label": "Split", name: "split" }, splits.map((s) => h("option", { value: s }, s)));
  const body = h("div", { class: "charts" });
  async function draw() {
    body.replaceChildren();
    const split = pick.value;
    const a = evaluation[split].analysis;
    if (a.kind === "binary") await binary(body, name, split, a, evaluation);
    else if (a.kind === "multiclass") multiclass(body, a);
    else if (a.kind === "regression") regression(body, a);
  }
  pick.addEventListener("change", draw);
  if (splits.length > 1) box.append(h("label", { class: "field" }, h("span", {}, "Split"), pick));
  box.append(body);
  // Charts measure their box: draw once the section is in the page.
  setTimeout(draw, 0);
  return box;
}

