"""The chart's monitoring objects: the dashboards ConfigMap for Grafana's sidecar and the
PrometheusRule, off by default, rendered from the chart's dashboards/ and alerts/ files
exactly when enabled."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import yaml

from tests.kube_manifests.conftest import CHART, ROOT, helm_template, run_tool

PROMETHEUS_RULE_API = "monitoring.coreos.com/v1/PrometheusRule"
ENABLED = ["--set", "grafana.dashboards.enabled=true", "--set", "prometheus.rules.enabled=true"]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_nothing_for_monitoring_renders_by_default(
    rendered_default: list[dict[str, Any]],
) -> None:
    assert by_kind(rendered_default, "ConfigMap") == []
    assert by_kind(rendered_default, "PrometheusRule") == []


def test_the_dashboards_configmap_carries_every_dashboard_for_the_sidecar(helm: str) -> None:
    docs = helm_template(helm, *ENABLED)
    [cm] = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["name"] == "orch-orchestrator-dashboards"
    assert cm["metadata"]["namespace"] == "orchestrator"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "Orchestrator"
    files = sorted((CHART / "dashboards").glob("*.json"))
    assert sorted(cm["data"]) == [p.name for p in files]
    for p in files:
        assert json.loads(cm["data"][p.name]) == json.loads(p.read_text()), p.name


def test_the_sidecars_label_folder_and_namespace_are_values(helm: str) -> None:
    docs = helm_template(
        helm,
        "--set", "grafana.dashboards.enabled=true",
        "--set", "grafana.dashboards.label=my_dashboards",
        "--set", "grafana.dashboards.labelValue=yes",
        "--set", "grafana.dashboards.folder=",
        "--set", "grafana.dashboards.namespace=monitoring",
    )  # fmt: skip
    [cm] = by_kind(docs, "ConfigMap")
    assert cm["metadata"]["labels"]["my_dashboards"] == "yes"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert "annotations" not in cm["metadata"]
    assert cm["metadata"]["namespace"] == "monitoring"


def test_the_prometheus_rule_is_the_rules_file(helm: str) -> None:
    docs = helm_template(
        helm, *ENABLED, "--set", "prometheus.rules.labels.release=kps",
        "--api-versions", PROMETHEUS_RULE_API,
    )  # fmt: skip
    [rule] = by_kind(docs, "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["name"] == "orch-orchestrator"
    assert rule["metadata"]["labels"]["release"] == "kps"
    expected = yaml.safe_load((CHART / "alerts" / "orchestrator.rules.yaml").read_text())
    assert rule["spec"] == expected
    # The annotations' Go templates reach Prometheus as written, not rendered by Helm.
    texts = [r["annotations"]["description"] for g in rule["spec"]["groups"] for r in g["rules"]]
    assert any("{{ $value" in t for t in texts)


def test_the_prometheus_rule_needs_the_operators_crd(helm: str) -> None:
    """As the ServiceMonitor: without the Prometheus Operator's API, it is left out."""
    assert by_kind(helm_template(helm, *ENABLED), "PrometheusRule") == []


def test_helm_lint_passes_with_monitoring_enabled(helm: str) -> None:
    proc = run_tool(helm, "lint", "--strict", str(CHART), *ENABLED)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_operator_serves_metrics_for_a_pod_monitor(helm: str) -> None:
    docs = helm_template(
        helm, "--set", "serviceMonitor.enabled=true",
        "--api-versions", "monitoring.coreos.com/v1/PodMonitor",
    )  # fmt: skip
    [monitor] = by_kind(docs, "PodMonitor")
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    [operator] = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")
    ]
    [container] = operator["spec"]["template"]["spec"]["containers"]
    assert container["ports"] == [{"name": "metrics", "containerPort": 9090}]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ORCH_KUBE__METRICS_PORT"] == "9090"


def test_metrics_port_zero_serves_nothing(helm: str) -> None:
    docs = helm_template(
        helm, "--set", "serviceMonitor.enabled=true", "--set", "operator.metricsPort=0",
        "--api-versions", "monitoring.coreos.com/v1/PodMonitor",
    )  # fmt: skip
    assert by_kind(docs, "PodMonitor") == []
    [operator] = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")
    ]
    [container] = operator["spec"]["template"]["spec"]["containers"]
    assert "ports" not in container
    assert "ORCH_KUBE__METRICS_PORT" not in {e["name"] for e in container["env"]}


def test_the_service_monitor_sends_the_charts_admin_key(
    rendered_gpu: list[dict[str, Any]],
) -> None:
    """The API's /metrics answers 401 without a key that may read metrics (an admin key)."""
    [monitor] = by_kind(rendered_gpu, "ServiceMonitor")
    [secret] = by_kind(rendered_gpu, "Secret")
    auth = monitor["spec"]["endpoints"][0]["authorization"]
    assert auth == {
        "type": "Bearer",
        "credentials": {"name": secret["metadata"]["name"], "key": "admin-key"},
    }
    assert "admin-key" in secret.get("data", {}) or "admin-key" in secret.get("stringData", {})


# --- docs/dashboards.md stays true ------------------------------------------------------------
DOC = (ROOT / "docs" / "dashboards.md").read_text()


def doc_helm_installs() -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC, re.S)
    lines = [ln for b in blocks for ln in b.replace("\\\n", " ").splitlines() if ln.strip()]
    return [shlex.split(ln) for ln in lines if ln.startswith("helm install")]


def test_the_docs_helm_installs_render_what_they_promise(helm: str) -> None:
    installs = doc_helm_installs()
    assert len(installs) == 2
    for cmd in installs:
        args = [a for a in cmd[2:] if a != "--create-namespace"]
        proc = run_tool(helm, "template", *args, "--api-versions", PROMETHEUS_RULE_API)
        assert proc.returncode == 0, proc.stderr
        kinds = {d["kind"] for d in yaml.safe_load_all(proc.stdout) if d}
        assert "ConfigMap" in kinds, cmd
        if "prometheus.rules.enabled=true" in cmd:
            assert "PrometheusRule" in kinds


def test_every_value_and_path_the_doc_names_exists() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    named = {
        m
        for row in re.findall(r"^\| `[\w.]+`.*$", DOC, re.M)
        for m in re.findall(r"`((?:grafana|prometheus|operator|serviceMonitor)\.[\w.]+)`", row)
    }
    assert len(named) >= 7
    for dotted in sorted(named):
        node: Any = values
        for part in dotted.split("."):
            assert isinstance(node, dict) and part in node, dotted
            node = node[part]
    paths = set(re.findall(r"(?<![\w/])((?:helm|docs|orchestrator|tests)/[\w./-]*\w)", DOC))
    assert [p for p in sorted(paths) if not (ROOT / p).exists()] == []


def test_the_doc_names_every_dashboard_and_every_alert() -> None:
    for path in (CHART / "dashboards").glob("*.json"):
        assert f"`{path.name}`" in DOC, path.name
        assert f"`{json.loads(path.read_text())['uid']}`" in DOC, path.name
    rules = yaml.safe_load((CHART / "alerts" / "orchestrator.rules.yaml").read_text())
    for group in rules["groups"]:
        for r in group["rules"]:
            assert f"`{r['alert']}`" in DOC, r["alert"]
