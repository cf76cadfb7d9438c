// Charts drawn with uPlot (vendored), each with a "Show as table" toggle holding its numbers.

import { h, fmt, markRendered } from "./ui.js";

export const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#4b5563"];
const MAX_TABLE_ROWS = 5000;
const MAX_DRAWN_POINTS = 4000;

function width(el) {
  const main = document.getElementById("main");
  const avail = (el && el.clientWidth) || (main ? main.clientWidth - 32 : 600);
  return Math.max(200, Math.min(avail, 720));
}

// Keep the shape of a long series (each bucket's first, min, max, last) in ~n points.
export function decimate(xs, ys, n = MAX_DRAWN_POINTS) {
  if (xs.length <= n) return [xs, ys];
  const buckets = Math.floor(n / 4);
  const size = xs.length / buckets;
  const ox = [];
  const oy = [];
  for (let b = 0; b < buckets; b++) {
    const lo = Math.floor(b * size);
    const hi = Math.min(xs.length, Math.floor((b + 1) * size));
    let mi = lo;
    let ma = lo;
    for (let i = lo; i < hi; i++) {
      if (ys[i] < ys[mi]) mi = i;
      if (ys[i] > ys[ma]) ma = i;
    }
    for (const i of [...new Set([lo, mi, ma, hi - 1])].sort((a, c) => a - c)) {
      ox.push(xs[i]);
      oy.push(ys[i]);
    }
  }
  return [ox, oy];
}

function dataTable(xLabel, data, labels) {
  const rows = Math.min(data[0].length, MAX_TABLE_ROWS);
  const body = [];
  for (let i = 0; i < rows; i++) {
    body.push(h("tr", {}, data.map((col) => h("td", {}, fmt(col[i])))));
  }
  return h("div", { class: "table-wrap chart-table" },
    h("table", {},
      h("thead", {}, h("tr", {}, [xLabel, ...labels].map((l) => h("th", { scope: "col" }, l)))),
      h("tbody", {}, body)),
    data[0].length > rows ? h("p", { class: "note" }, `first ${rows} of ${data[0].length} rows`) : null);
}

/**
 * spec: {title, xLabel, yLabel, data: [xs, ys1, ys2...], labels: [...], kind: "line"|"bars"|"points",
 *        time: bool, draw: (u) => void (extra drawing, e.g. a threshold), xRange, yRange}
 * Returns {el, plot, redraw(), setData(data)}.
 */
export function chart(spec) {
  const plotBox = h("div", { class: "plot", role: "img", "aria-label": spec.title });
  const tableBox = h("div", { hidden: true });
  const toggle = h("button", { type: "button", class: "link", "aria-expanded": "false" }, "Show as table");
  const fig = h("figure", { class: "chart", "data-chart": spec.title },
    h("figcaption", {}, h("span", {}, spec.title), toggle), plotBox, tableBox);
  const state = { data: spec.data };
  toggle.addEventListener("click", () => {
    const show = tableBox.hidden;
    tableBox.hidden = !show;
    plotBox.hidden = show;
    toggle.textContent = show ? "Show as chart" : "Show as table";
    toggle.setAttribute("aria-expanded", String(show));
    if (show) tableBox.replaceChildren(dataTable(spec.xLabel || "x", state.data, spec.labels));
  });
  const kind = spec.kind || "line";
  const paths = kind === "bars" && window.uPlot ? uPlot.paths.bars({ size: [0.9, 40] }) : undefined;
  const series = [{ label: spec.xLabel || "x" }].concat(spec.labels.map((label, i) => ({
    label,
    stroke: (spec.colors || COLORS)[i % COLORS.length],
    fill: kind === "bars" ? `${(spec.colors || COLORS)[i % COLORS.length]}66` : undefined,
    width: kind === "points" ? 0 : 1.5,
    paths: kind === "points" ? () => null : paths,
    points: kind === "points" ? { show: true, size: 4, fill: (spec.colors || COLORS)[i % COLORS.length] } : { show: false },
    spanGaps: true,
  })));
  const opts = {
    width: 600,
    height: spec.height || 240,
    series,
    scales: {
      x: { time: Boolean(spec.time), ...(spec.xRange ? { range: spec.xRange } : {}) },
      ...(spec.yRange ? { y: { range: spec.yRange } } : {}),
    },
    axes: [{ label: spec.xLabel }, { label: spec.yLabel }],
    legend: { show: spec.labels.length > 1 || Boolean(spec.legend) },
    hooks: spec.draw ? { draw: [spec.draw] } : {},
  };
  const result = { el: fig, plot: null };
  function drawn(data) {
    if (kind !== "line" || data.length !== 2) return data;
    return decimate(data[0], data[1]);
  }
  result.mount = () => {
    if (!window.uPlot) {
      plotBox.replaceChildren(h("p", { class: "note" }, "charting library not loaded; showing the table"));
      toggle.click();
      return result;
    }
    opts.width = width(plotBox);
    result.plot = new uPlot(opts, drawn(state.data), plotBox);
    markRendered("chart");
    // Follow the box's width (the page's layout decides it; charts share a row or not).
    if (window.ResizeObserver) {
      let last = opts.width;
      new ResizeObserver(() => {
        const w = width(plotBox);
        if (Math.abs(w - last) > 2) {
          last = w;
          result.plot.setSize({ width: w, height: opts.height });
        }
      }).observe(plotBox);
    }
    return result;
  };
  result.redraw = () => result.plot && result.plot.redraw(false, false);
  result.setData = (data) => {
    state.data = data;
    if (result.plot) result.plot.setData(drawn(data));
    if (!tableBox.hidden) tableBox.replaceChildren(dataTable(spec.xLabel || "x", data, spec.labels));
  };
  return result;
}

// Append a chart to parent and draw it (uPlot measures its box once it is in the page).
export function mountChart(parent, spec) {
  const c = chart(spec);
  parent.append(c.el);
  return c.mount();
}

// Series with different xs on one shared x (gaps as null), as uPlot draws them.
export function align(seriesList) {
  if (seriesList.length === 1) return [seriesList[0].xs, seriesList[0].ys];
  const xs = [...new Set(seriesList.flatMap((s) => s.xs))].sort((a, b) => a - b);
  const index = new Map(xs.map((x, i) => [x, i]));
  const cols = seriesList.map((s) => {
    const col = new Array(xs.length).fill(null);
    s.xs.forEach((x, i) => { col[index.get(x)] = s.ys[i]; });
    return col;
  });
  return [xs, ...cols];
}

// A dot (and a label) at (x, y) in data units: the threshold on a ROC or PR curve.
export function dotAt(u, x, y, text) {
  if (x === null || y === null || Number.isNaN(x) || Number.isNaN(y)) return;
  const ctx = u.ctx;
  const cx = u.valToPos(x, "x", true);
  const cy = u.valToPos(y, "y", true);
  ctx.save();
  ctx.fillStyle = "#111827";
  ctx.beginPath();
  ctx.arc(cx, cy, 5 * devicePixelRatio, 0, 2 * Math.PI);
  ctx.fill();
  if (text) {
    ctx.font = `${12 * devicePixelRatio}px sans-serif`;
    ctx.fillText(text, cx + 8 * devicePixelRatio, cy - 8 * devicePixelRatio);
  }
  ctx.restore();
}

// A vertical line at x in data units.
export function vlineAt(u, x) {
  const ctx = u.ctx;
  const cx = u.valToPos(x, "x", true);
  ctx.save();
  ctx.strokeStyle = "#111827";
  ctx.setLineDash([4, 4]);
  ctx.beginPath();
  ctx.moveTo(cx, u.bbox.top);
  ctx.lineTo(cx, u.bbox.top + u.bbox.height);
  ctx.stroke();
  ctx.restore();
}

// A confusion matrix (or any count grid) as a heat-mapped table: it is its own table.
export function heatmap(labels, matrix, { rowTitle = "actual", colTitle = "predicted" } = {}) {
  const max = Math.max(1, ...matrix.flat());
  const t = h("table", { class: "heatmap", "aria-label": `confusion matrix, rows ${rowTitle}, columns ${colTitle}` },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, `${rowTitle} \\ ${colTitle}`),
      labels.map((l) => h("th", { scope: "col" }, String(l))))),
    h("tbody", {}, matrix.map((row, i) => h("tr", {}, h("th", { scope: "row" }, String(labels[i])),
      row.map((v, j) => {
        const a = v / max;
        return h("td", {
          "data-cell": `${i},${j}`,
          style: `background: rgba(37, 99, 235, ${a.toFixed(3)}); color: ${a > 0.55 ? "#fff" : "#111"}`,
        }, String(v));
      })))));
  markRendered();
  return h("div", { class: "table-wrap" }, t);
}
