"""The Grafana dashboards and the alerting rules read only metrics the product exports.

Every PromQL expression of every dashboard (panels, and the variables' ``label_values``
queries) and every alerting rule is scanned for metric names (``tests/monitoring/promql.py``);
each must be a series that ``orchestrator.metrics``'s registry exposes, and ``rate`` and its
kin may only read counters. The dashboards are checked for the shape Grafana's provisioning
expects (schema version, the templated data source, defined variables, unique ids), the rules
for the shape Prometheus expects; ``promtool check rules`` runs where promtool is installed.
``promtool test rules`` runs ``alerts.test.yaml`` (each alert on its series), and every
dashboard query goes through promtool's parser. The chart's copy and the docs' copy of the
rules must be the same file.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator import metrics
from tests.monitoring.promql import (
    exported_series,
    metric_names,
    metric_uses,
    problems,
    variable_query_expr,
)

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "orchestrator"
DASHBOARDS = sorted((CHART / "dashboards").glob("*.json"))
RULES = CHART / "alerts" / "orchestrator.rules.yaml"
DOCS_RULES = ROOT / "docs" / "monitoring" / "alerts.yaml"
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range", "__range_s", "__interval_ms"}
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")

EXPORTED, COUNTERS = exported_series(metrics.REGISTRY)


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in board["panels"]:
        yield p
        yield from p.get("panels", [])  # a collapsed row keeps its panels inside


def queries(board: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every query the dashboard runs."""
    for v in board["templating"]["list"]:
        if v["type"] != "query":
            continue
        query = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        expr = variable_query_expr(query)
        if expr is not None:
            yield f"variable ${v['name']}", expr
    for p in panels(board):
        for t in p.get("targets", []):
            yield f"panel {p['title']!r} target {t['refId']}", t["expr"]


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for group in doc["groups"] for r in group["rules"]]


# --- the scanner ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("up", {"up"}),
        ('rate(a_total{x="y", z=~"$v"}[$__rate_interval])', {"a_total"}),
        ("histogram_quantile(0.99, sum by (le, k) (rate(h_bucket[5m])))", {"h_bucket"}),
        (
            "sum(rate(a_total[5m])) by (le) / ignoring (b) group_left (c) g offset 1h",
            {"a_total", "g"},
        ),
        ("time() - max(g > 0) > 120", {"g"}),
        (
            "(a == 0) and on (e, v) ((b > 0) or on (e, v) (sum by (e) (rate(c_total[5m])) > 0))",
            {"a", "b", "c_total"},
        ),
        ('count(g{l="sum(x) by (y)", m="}{"})', {"g"}),  # brackets in a string are text
        ("1e3 * g + 0x1f - .5", {"g"}),
        ("max_over_time(g[1h:5m])", {"g"}),
        ("sum without (instance) (g) bool > 1", {"g"}),
    ],
)
def test_the_scanner_finds_the_metric_names(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


@pytest.mark.parametrize("expr", ["sum(rate(a[5m])", "rate(a[5m)", "a}", 'g{x="y}'])
def test_the_scanner_refuses_unbalanced_brackets(expr: str) -> None:
    with pytest.raises(ValueError):
        metric_uses(expr)


def test_a_wrong_name_or_a_rate_over_a_gauge_is_reported_by_name() -> None:
    found = list(
        problems(
            "panel 'P'",
            "rate(orch_concurrent_requests[5m]) + orch_invocations + orch_model_latency_seconds",
            EXPORTED,
            COUNTERS,
        )
    )
    assert found == [
        "panel 'P': rate() over 'orch_concurrent_requests', which is not a counter",
        "panel 'P': metric 'orch_invocations' is not exported by orchestrator.metrics",
        "panel 'P': metric 'orch_model_latency_seconds' is not exported by orchestrator.metrics",
    ]


def test_the_exported_names_carry_prometheus_clients_suffixes() -> None:
    assert {"orch_invocations_total", "orch_model_latency_seconds_bucket"} <= EXPORTED
    assert {"orch_model_latency_seconds_count", "orch_concurrent_requests"} <= EXPORTED
    assert "orch_invocations" not in EXPORTED and "orch_model_latency_seconds" not in EXPORTED
    assert "orch_concurrent_requests" not in COUNTERS
    # A gauge whose own name ends in _total is exposed as it is.
    assert "orch_transform_records_total" in EXPORTED - COUNTERS


def test_every_variable_query_names_its_metric() -> None:
    assert variable_query_expr('label_values(m{a=~"$b"}, c)') == 'm{a=~"$b"}'
    assert variable_query_expr("label_values(job)") is None
    assert variable_query_expr("query_result(up)") == "query_result(up)"


# --- the dashboards ---------------------------------------------------------------------------
def test_there_is_a_dashboard_for_each_area() -> None:
    assert [p.name for p in DASHBOARDS] == [
        "control-plane.json",
        "endpoints.json",
        "training.json",
        "transform.json",
    ]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_query_names_an_exported_metric(path: Path) -> None:
    board = load(path)
    found = [
        line
        for where, expr in queries(board)
        for line in problems(f"{path.name}: {where}", expr, EXPORTED, COUNTERS)
    ]
    assert found == []
    assert len(list(queries(board))) >= 5


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_the_dashboard_has_the_shape_grafana_provisions(path: Path) -> None:
    board = load(path)
    assert board["schemaVersion"] == 39
    assert board["uid"].startswith("orch-") and len(board["uid"]) <= 40
    assert "orchestrator" in board["tags"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    templated = {"type": "prometheus", "uid": "${datasource}"}
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for p in panels(board):
        if p["type"] == "row":
            continue
        assert p["datasource"] == templated, p["title"]
        assert p.get("description"), f"panel {p['title']!r} has no description"
        assert p["targets"], f"panel {p['title']!r} has no query"
        for t in p["targets"]:
            assert t["datasource"] == templated, p["title"]
        box = p["gridPos"]
        assert box["x"] + box["w"] <= 24, p["title"]
    for v in variables.values():
        if v["type"] == "query":
            assert v["datasource"] == templated, v["name"]
    for where, expr in queries(board):
        for m in re.finditer(r"\$\{?(\w+)\}?", expr):
            assert m.group(1) in variables or m.group(1) in GRAFANA_BUILTINS, (where, m.group())


def test_dashboard_uids_are_unique() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert len(uids) == len(set(uids))


# --- the alerting rules -----------------------------------------------------------------------
def test_every_alert_names_an_exported_metric() -> None:
    found = [
        line
        for r in rules()
        for line in problems(f"alert {r['alert']}", r["expr"], EXPORTED, COUNTERS)
    ]
    assert found == []


def test_the_alerts_cover_the_control_planes_health() -> None:
    reads = {r["alert"]: metric_names(r["expr"]) for r in rules()}
    assert reads == {
        "OrchestratorControllerPassLagging": {"orch_controller_last_pass_timestamp_seconds"},
        "OrchestratorControllerPassSlow": {"orch_controller_pass_seconds_bucket"},
        "OrchestratorTrainingQueueLong": {"orch_training_queue_length"},
        "OrchestratorReconcileErrors": {
            "orch_reconcile_errors_total",
            "orch_reconcile_seconds_count",
        },
        "OrchestratorObjectStoreErrors": {"orch_object_store_errors_total"},
        "OrchestratorObjectStoreIntegrityErrors": {"orch_object_store_errors_total"},
        "OrchestratorAPIErrorRatioHigh": {"orch_api_requests_total"},
        "OrchestratorEndpointNoReadyReplicas": {
            "orch_endpoint_instances",
            "orch_held_requests",
            "orch_invocations_total",
        },
    }


def test_every_rule_has_the_shape_prometheus_loads() -> None:
    doc = yaml.safe_load(RULES.read_text())
    assert set(doc) == {"groups"}
    names = [g["name"] for g in doc["groups"]]
    assert len(names) == len(set(names))
    for r in rules():
        assert set(r) <= {"alert", "expr", "for", "labels", "annotations"}, r["alert"]
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", r["alert"])
        assert r["labels"]["severity"] in {"critical", "warning"}, r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert "for" not in r or DURATION.match(r["for"]), r["alert"]
        for text in r["annotations"].values():  # Go templates: balanced braces
            assert text.count("{{") == text.count("}}"), r["alert"]


def test_the_docs_copy_of_the_rules_is_the_charts() -> None:
    assert DOCS_RULES.read_text() == RULES.read_text(), (
        "docs/monitoring/alerts.yaml differs from the chart's: "
        "cp helm/orchestrator/alerts/orchestrator.rules.yaml docs/monitoring/alerts.yaml"
    )


def _promtool() -> str:
    local = ROOT / ".tools" / "bin" / "promtool"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Prometheus's release archives ship it)")
    return found


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False, cwd=cwd)


def test_promtool_checks_the_rules() -> None:
    proc = _run(_promtool(), "check", "rules", str(DOCS_RULES), str(RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_alerts_fire_on_their_series_and_not_on_near_misses() -> None:
    """``alerts.test.yaml``: promtool's unit tests of every alert (inputs, times, labels and
    the rendered annotations)."""
    here = Path(__file__).parent
    proc = _run(_promtool(), "test", "rules", "alerts.test.yaml", cwd=here)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    tested = set(re.findall(r"alertname: (\w+)", (here / "alerts.test.yaml").read_text()))
    assert tested == {r["alert"] for r in rules()}


def as_promql(expr: str) -> str:
    """A dashboard query as Prometheus would get it: Grafana's variables substituted."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query as a recording rule, so that promtool's parser checks its PromQL."""
    records = [
        {"record": f"orch_dashboard:q{i}", "expr": as_promql(expr)}
        for i, (_, expr) in enumerate(
            (q for path in DASHBOARDS for q in queries(load(path))), start=1
        )
    ]
    path = tmp_path / "queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": records}]}))
    proc = _run(_promtool(), "check", "rules", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {len(records)} rules found" in proc.stdout
