// Wizards: train a model (data, label, problem type, algorithm and hyperparameters), deploy a
// completed job (Model, EndpointConfig, Endpoint), update an endpoint (blue/green: canary or
// linear, bake time, alarms). An API error is shown next to the field it names.

import { get, getOptional, json, session, enc } from "./api.js";
import { h, field, table, showFormError, clearFormErrors } from "./ui.js";

// Used when the server has no /api/v1/algorithms yet (orchestrator.algorithms.hyperparameters).
const FALLBACK_ALGORITHMS = [
  { Name: "linear-learner", ProblemTypes: ["binary_classifier", "multiclass_classifier", "regressor"], Hyperparameters: [
    { Name: "epochs", Type: "Integer", Default: 100, MinValue: 1, MaxValue: 10000 },
    { Name: "learning_rate", Type: "Continuous", Default: null, MinValue: 0, MaxValue: 10, Description: "(0, 10]" },
    { Name: "mini_batch_size", Type: "Integer", Default: 32, MinValue: 1, MaxValue: 1000000 },
    { Name: "l1", Type: "Continuous", Default: 0, MinValue: 0, MaxValue: 1000 },
    { Name: "l2", Type: "Continuous", Default: 0, MinValue: 0, MaxValue: 1000 },
    { Name: "optimizer", Type: "Categorical", Default: "adam", Values: ["adam", "sgd"] },
    { Name: "seed", Type: "Integer", Default: 0, MinValue: 0, MaxValue: 2147483647 },
  ] },
  { Name: "mlp", ProblemTypes: ["binary_classifier", "multiclass_classifier", "regressor"], Hyperparameters: [
    { Name: "epochs", Type: "Integer", Default: 100, MinValue: 1, MaxValue: 10000 },
    { Name: "learning_rate", Type: "Continuous", Default: null, MinValue: 0, MaxValue: 10 },
    { Name: "num_layers", Type: "Integer", Default: 2, MinValue: 1, MaxValue: 16 },
    { Name: "hidden_units", Type: "Integer", Default: 64, MinValue: 1, MaxValue: 4096 },
    { Name: "dropout", Type: "Continuous", Default: 0, MinValue: 0, MaxValue: 0.9 },
    { Name: "seed", Type: "Integer", Default: 0, MinValue: 0, MaxValue: 2147483647 },
  ] },
];
const HIDDEN_HPS = new Set(["predictor_type", "label"]);
const PREVIEW_ROWS = 8;

export function parseCsv(text, maxRows = 200) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.trim()) continue;
    rows.push(line.split(",").map((c) => c.trim().replace(/^"(.*)"$/, "$1")));
    if (rows.length > maxRows) break;
  }
  if (!rows.length) return { header: null, rows: [] };
  const numeric = rows[0].every((c) => c !== "" && Number.isFinite(Number(c)));
  return numeric ? { header: null, rows } : { header: rows[0], rows: rows.slice(1) };
}

export function suggestProblem(values) {
  const distinct = new Set(values.filter((v) => v !== ""));
  if (distinct.size === 2) return "binary_classifier";
  const ints = [...distinct].every((v) => Number.isInteger(Number(v)));
  if (ints && distinct.size > 2 && distinct.size <= 20) return "multiclass_classifier";
  return "regressor";
}

const uniqueName = (base) => `${base}-${new Date().toISOString().replace(/[-:T.Z]/g, "").slice(2, 14)}`;

function hpControl(hp) {
  const attrs = { name: hp.Name, id: `hp-${hp.Name}`, "data-field": `HyperParameters.${hp.Name}` };
  if (hp.Type === "Categorical" && hp.Values) {
    return h("select", attrs, h("option", { value: "" }, `default${hp.Default !== null && hp.Default !== undefined ? ` (${hp.Default})` : ""}`),
      hp.Values.map((v) => h("option", { value: v }, v)));
  }
  if (hp.Type === "Boolean") {
    return h("select", attrs, h("option", { value: "" }, `default (${hp.Default})`), h("option", { value: "true" }, "true"), h("option", { value: "false" }, "false"));
  }
  const numeric = hp.Type === "Integer" || hp.Type === "Continuous";
  return h("input", {
    ...attrs, type: "text", inputmode: numeric ? "decimal" : "text",
    placeholder: hp.Default !== null && hp.Default !== undefined ? String(hp.Default) : "auto",
  });
}

function hpHint(hp) {
  if (hp.Description) return hp.Required ? `${hp.Description} (required)` : hp.Description;
  const parts = [];
  if (hp.MinValue !== undefined && hp.MinValue !== null) parts.push(`${hp.Type === "Integer" ? "integer" : "number"} in [${hp.MinValue}, ${hp.MaxValue}]`);
  if (hp.Description) parts.push(hp.Description);
  if (hp.Required) parts.push("required");
  return parts.join("; ");
}

export async function trainWizard(main) {
  const catalog = await getOptional("/api/v1/algorithms");
  const algorithms = catalog && catalog.Algorithms && catalog.Algorithms.length ? catalog.Algorithms : FALLBACK_ALGORITHMS;
  const bucket = (session.caller && session.caller.DefaultBucket) || "orchestrator";
  const state = { uri: null, parsed: null };

  const existing = h("select", { name: "S3Uri", id: "data-object", "data-field": "InputDataConfig" }, h("option", { value: "" }, "choose a CSV object…"));
  const listed = await getOptional("/api/v1/objects", { prefix: `s3://${bucket}/` });
  for (const o of (listed && listed.Objects) || []) {
    if (o.Uri.endsWith(".csv")) existing.append(h("option", { value: o.Uri }, o.Uri));
  }
  const file = h("input", { type: "file", accept: ".csv,text/csv", name: "upload", id: "data-upload" });
  const preview = h("div", { id: "preview" });
  const label = h("select", { name: "label", id: "label-column", "data-field": "HyperParameters.label" });
  const problem = h("select", { name: "predictor_type", id: "problem-type", "data-field": "HyperParameters.predictor_type" },
    ["binary_classifier", "multiclass_classifier", "regressor"].map((p) => h("option", { value: p }, p)));
  const algorithm = h("select", { name: "AlgorithmName", id: "algorithm", "data-field": "AlgorithmSpecification.AlgorithmName" },
    algorithms.map((a) => h("option", { value: a.Name }, a.Name)));
  const hpBox = h("fieldset", { id: "hyperparameters-form" });
  const jobName = h("input", { name: "TrainingJobName", id: "job-name", value: uniqueName("console"), required: true, "data-field": "TrainingJobName" });
  const start = h("button", { type: "submit", id: "start-training" }, "Start training");
  const status = h("p", { class: "note", "aria-live": "polite" });
  const form = h("form", { class: "wizard", id: "train-form", novalidate: true },
    h("h1", {}, "Train a model"),
    h("fieldset", {}, h("legend", {}, "1. Data"), field("Existing object", existing), field("…or upload a CSV", file), preview),
    h("fieldset", {}, h("legend", {}, "2. What to predict"), field("Label column", label), field("Problem type", problem, "suggested from the label's values")),
    h("fieldset", {}, h("legend", {}, "3. Algorithm"), field("Algorithm", algorithm), hpBox),
    h("fieldset", {}, h("legend", {}, "4. Start"), field("Job name", jobName), start, status));
  main.append(form);

  function drawHps() {
    const algo = algorithms.find((a) => a.Name === algorithm.value) || algorithms[0];
    hpBox.replaceChildren(h("legend", {}, `Hyperparameters of ${algo.Name}`),
      ...algo.Hyperparameters.filter((hp) => !HIDDEN_HPS.has(hp.Name)).map((hp) => field(hp.Name, hpControl(hp), hpHint(hp))));
    const types = algo.ProblemTypes || [];
    for (const o of problem.options) o.disabled = types.length > 0 && !types.includes(o.value);
  }
  algorithm.addEventListener("change", drawHps);
  drawHps();

  function showData(text) {
    state.parsed = parseCsv(text);
    const { header, rows } = state.parsed;
    const width = header ? header.length : (rows[0] || []).length;
    const names = header || Array.from({ length: width }, (_, i) => `column ${i}`);
    label.replaceChildren(...names.map((n, i) => h("option", { value: header ? n : String(i) }, n)));
    const cols = names.map((n, i) => ({ label: n, value: (r) => r[i] }));
    preview.replaceChildren(h("p", { class: "note" }, `${width} columns; the first ${Math.min(PREVIEW_ROWS, rows.length)} rows:`),
      table(cols, rows.slice(0, PREVIEW_ROWS), { id: "preview-table" }));
    suggest();
  }
  function suggest() {
    if (!state.parsed) return;
    const { header, rows } = state.parsed;
    const i = header ? header.indexOf(label.value) : Number(label.value);
    problem.value = suggestProblem(rows.map((r) => r[i] ?? ""));
  }
  label.addEventListener("change", suggest);

  existing.addEventListener("change", async () => {
    if (!existing.value) return;
    const u = existing.value.replace(/^s3:\/\//, "");
    const r = await fetch(`/api/v1/objects/${u.split("/").map(enc).join("/")}`, { credentials: "same-origin" });
    state.uri = existing.value;
    showData((await r.text()).slice(0, 65536));
  });
  file.addEventListener("change", async () => {
    const f = file.files[0];
    if (!f) return;
    status.textContent = `uploading ${f.name}…`;
    const key = `console-uploads/${uniqueName(f.name.replace(/[^A-Za-z0-9._-]/g, "_").replace(/\.csv$/i, ""))}/${f.name.replace(/[^A-Za-z0-9._-]/g, "_")}`;
    try {
      await json("PUT", `/api/v1/objects/${enc(bucket)}/${key}`, { body: f, headers: { "Content-Type": "text/csv" } });
      state.uri = `s3://${bucket}/${key}`;
      status.textContent = `uploaded to ${state.uri}`;
      showData(await f.slice(0, 65536).text());
    } catch (e) {
      showFormError(form, { ...e, field: "upload", message: e.message });
    }
  });

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    if (!state.uri) return showFormError(form, { field: "S3Uri", message: "choose an object or upload a CSV first" });
    const hps = { predictor_type: problem.value, label: label.value };
    for (const c of hpBox.querySelectorAll("input, select")) if (c.value.trim() !== "") hps[c.name] = c.value.trim();
    const spec = {
      TrainingJobName: jobName.value.trim(),
      AlgorithmSpecification: { AlgorithmName: algorithm.value, TrainingInputMode: "File" },
      HyperParameters: hps,
      InputDataConfig: [{ ChannelName: "train", DataSource: { S3DataSource: { S3Uri: state.uri } } }],
      ResourceConfig: { InstanceType: "local", InstanceCount: 1 },
      StoppingCondition: { MaxRuntimeInSeconds: 3600 },
    };
    start.disabled = true;
    try {
      await json("POST", "/api/v1/training-jobs", { json: spec });
      location.hash = `#/jobs/${enc(spec.TrainingJobName)}`;
    } catch (e) {
      showFormError(form, e);
    } finally {
      start.disabled = false;
    }
  });
}

export async function deployWizard(main, jobName) {
  const job = await get(`/api/v1/training-jobs/${enc(jobName)}`);
  const artifact = (job.ModelArtifacts || {}).S3ModelArtifacts;
  const name = h("input", { name: "EndpointName", id: "endpoint-name", value: jobName, required: true });
  const count = h("input", { name: "InitialInstanceCount", id: "instance-count", type: "number", min: "1", max: "100", value: "1" });
  const itype = h("input", { name: "InstanceType", id: "instance-type", value: "local" });
  const auth = h("select", { name: "AuthMode", id: "auth-mode" },
    h("option", { value: "ApiKey" }, "API key required"), h("option", { value: "None" }, "public (no key)"));
  const scale = h("input", { type: "checkbox", name: "autoscale", id: "autoscale" });
  const min = h("input", { name: "MinInstanceCount", type: "number", min: "0", max: "100", value: "1", id: "min-instances" });
  const max = h("input", { name: "MaxInstanceCount", type: "number", min: "1", max: "100", value: "2", id: "max-instances" });
  const scaleBox = h("div", { hidden: true }, field("Min instances", min), field("Max instances", max));
  scale.addEventListener("change", () => { scaleBox.hidden = !scale.checked; });
  const go = h("button", { type: "submit", id: "deploy" }, "Deploy");
  const progress = h("ol", { class: "progress", "aria-live": "polite" });
  const form = h("form", { class: "wizard", id: "deploy-form", novalidate: true },
    h("h1", {}, `Deploy ${jobName}`),
    job.TrainingJobStatus !== "Completed" ? h("p", { class: "error" }, `The job is ${job.TrainingJobStatus}: only a Completed job can be deployed.`) : null,
    h("p", { class: "note" }, `Model artifact: ${artifact || "none"}`),
    field("Endpoint name (also the model's and config's)", name), field("Instance count", count), field("Instance type", itype),
    field("Invocations", auth), h("label", { class: "field check" }, scale, h("span", {}, "Autoscaling")), scaleBox,
    go, progress);
  main.append(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    progress.replaceChildren();
    const n = name.value.trim();
    const env = {};
    const hp = job.HyperParameters || {};
    if (hp.sagemaker_program) env.SAGEMAKER_PROGRAM = hp.sagemaker_program;
    if (hp.sagemaker_submit_directory) env.SAGEMAKER_SUBMIT_DIRECTORY = hp.sagemaker_submit_directory;
    const variant = { VariantName: "AllTraffic", ModelName: n, InitialInstanceCount: Number(count.value), InstanceType: itype.value.trim() };
    if (scale.checked) variant.ManagedInstanceScaling = { Status: "ENABLED", MinInstanceCount: Number(min.value), MaxInstanceCount: Number(max.value) };
    const steps = [
      ["CreateModel", "/api/v1/models", { ModelName: n, PrimaryContainer: { ModelDataUrl: artifact, Environment: env } }],
      ["CreateEndpointConfig", "/api/v1/endpoint-configs", { EndpointConfigName: n, ProductionVariants: [variant] }],
      ["CreateEndpoint", "/api/v1/endpoints", { EndpointName: n, EndpointConfigName: n, AuthMode: auth.value }],
    ];
    go.disabled = true;
    try {
      for (const [what, path, body] of steps) {
        const li = h("li", {}, `${what}…`);
        progress.append(li);
        await json("POST", path, { json: body });
        li.textContent = `${what}: done`;
      }
      location.hash = `#/endpoints/${enc(n)}`;
    } catch (e) {
      if (e.field === "ModelName" || e.field === "EndpointConfigName") e.field = "EndpointName";
      showFormError(form, e);
    } finally {
      go.disabled = false;
    }
  });
}

export async function updateWizard(main, endpointName) {
  const ep = await get(`/api/v1/endpoints/${enc(endpointName)}`);
  const configs = await get("/api/v1/endpoint-configs", { MaxResults: 100 });
  const config = h("select", { name: "EndpointConfigName", id: "config" },
    (configs.EndpointConfigs || []).map((c) => h("option", { value: c.EndpointConfigName, selected: c.EndpointConfigName === ep.EndpointConfigName }, c.EndpointConfigName)));
  const type = h("select", { name: "Type", id: "routing" },
    ["ALL_AT_ONCE", "CANARY", "LINEAR"].map((t) => h("option", { value: t }, t)));
  const sizeType = h("select", { name: "SizeType", "aria-label": "Step size unit" },
    h("option", { value: "CAPACITY_PERCENT" }, "% of capacity"), h("option", { value: "INSTANCE_COUNT" }, "instances"));
  const sizeValue = h("input", { name: "Value", type: "number", min: "1", value: "10", id: "step-size" });
  const sizeBox = h("div", { hidden: true }, field("Canary / step size", sizeValue), field("Unit", sizeType));
  const bake = h("input", { name: "WaitIntervalInSeconds", type: "number", min: "0", max: "3600", value: "60", id: "bake" });
  const term = h("input", { name: "TerminationWaitInSeconds", type: "number", min: "0", max: "3600", value: "0" });
  const alarms = h("input", { name: "Alarms", id: "alarms", placeholder: "alarm names, comma separated" });
  const rate = h("input", { name: "Threshold", type: "number", min: "0", max: "1", step: "0.01", value: "0.05", id: "error-rate" });
  type.addEventListener("change", () => { sizeBox.hidden = type.value === "ALL_AT_ONCE"; });
  const go = h("button", { type: "submit" }, "Update");
  const form = h("form", { class: "wizard", id: "update-form", novalidate: true },
    h("h1", {}, `Update ${endpointName}`),
    field("New endpoint config", config, `now serving ${ep.CurrentEndpointConfigName || ep.EndpointConfigName}`),
    field("Traffic shift", type), sizeBox, field("Bake time after each shift (s)", bake),
    field("Keep the old fleet after the shift (s)", term),
    field("Roll back on these metric alarms", alarms),
    field("…or when the new fleet's 5xx rate exceeds", rate), go);
  main.append(form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    clearFormErrors(form);
    const routing = { Type: type.value, WaitIntervalInSeconds: Number(bake.value) };
    const size = { Type: sizeType.value, Value: Number(sizeValue.value) };
    if (type.value === "CANARY") routing.CanarySize = size;
    if (type.value === "LINEAR") routing.LinearStepSize = size;
    const named = alarms.value.split(",").map((s) => s.trim()).filter(Boolean).map((n) => ({ AlarmName: n }));
    const list = [...named, { AlarmName: "console-5xx-rate", MetricName: "Invocation5XXErrorRate", Threshold: Number(rate.value) }];
    const body = {
      EndpointConfigName: config.value,
      DeploymentConfig: {
        BlueGreenUpdatePolicy: { TrafficRoutingConfiguration: routing, TerminationWaitInSeconds: Number(term.value) },
        AutoRollbackConfiguration: { Alarms: list },
      },
    };
    try {
      await json("PATCH", `/api/v1/endpoints/${enc(endpointName)}`, { json: body });
      location.hash = `#/endpoints/${enc(endpointName)}`;
    } catch (e) {
      showFormError(form, e);
    }
  });
}
