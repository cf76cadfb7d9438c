// Small DOM helpers: an element builder, tables, status badges, form errors, and the page's
// first-render mark (read by benchmarks/console_load.py).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const marked = new Set();
// "console:first-render": the first table or chart; "console:first-chart": the first chart.
export function markRendered(what = "render") {
  for (const name of what === "chart" ? ["render", "chart"] : [what]) {
    if (marked.has(name)) continue;
    marked.add(name);
    performance.mark(`console:first-${name}`);
  }
}

export function fmt(v) {
  if (v === null || v === undefined) return "";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(4);
  return String(v);
}

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// columns: [{label, value: row => text|Node}]
export function table(columns, rows, attrs = {}) {
  const t = h("table", attrs,
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, columns.map((c) => {
      const v = c.value(r);
      return h("td", {}, v instanceof Node ? v : fmt(v));
    })))),
  );
  markRendered();
  return h("div", { class: "table-wrap" }, t);
}

export function badge(status) {
  const s = String(status || "");
  return h("span", { class: `badge badge-${s.toLowerCase()}`, "data-status": s }, s);
}

export function section(title, ...children) {
  return h("section", {}, h("h2", {}, title), ...children);
}

export function errorBox(e) {
  return h("p", { class: "error", role: "alert" }, e.message || String(e));
}

// Show an API error next to the form control named by its field (else atop the form).
export function showFormError(form, e) {
  clearFormErrors(form);
  const field = e.field ? String(e.field) : "";
  const candidates = [field, field.split(".").pop(), field.replace(/^HyperParameters\./, "")];
  let control = null;
  for (const name of candidates) {
    if (!name) continue;
    control = form.querySelector(`[data-field="${CSS.escape(name)}"]`) ||
      form.querySelector(`[name="${CSS.escape(name)}"]`);
    if (control) break;
  }
  if (!control && e.message) {
    // "learning_rate: must be ..." names its field in the message.
    const first = e.message.split(":")[0].trim();
    control = form.querySelector(`[name="${CSS.escape(first)}"]`);
  }
  const msg = h("p", { class: "field-error", role: "alert", "data-error-for": control ? control.name || control.dataset.field : "" }, e.message);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    const holder = control.closest("label, .field") || control;
    holder.after(msg);
  } else {
    form.prepend(msg);
  }
  return msg;
}

export function clearFormErrors(form) {
  form.querySelectorAll(".field-error").forEach((el) => el.remove());
  form.querySelectorAll("[aria-invalid]").forEach((el) => el.removeAttribute("aria-invalid"));
}

export function field(label, control, hint) {
  return h("label", { class: "field" }, h("span", {}, label), control, hint ? h("small", {}, hint) : null);
}
