from __future__ import annotations

from datetime import UTC, datetime

from cli_harness import Cli

from orchestrator.testing import training_job_spec


def test_orch_search_prints_the_matches_sorted(cli: Cli) -> None:
    for name, acc in (("a", 0.97), ("b", 0.5), ("c", 0.99)):
        spec = training_job_spec(name, Tags=[{"Key": "team", "Value": "ml"}])
        status = {"FinalMetricDataList": [{"MetricName": "validation:accuracy", "Value": acc,
                                           "Timestamp": "2024-01-01T00:00:00Z"}]}  # fmt: skip
        cli.plane.store.create(
            "TrainingJob", name, spec, status, phase="Completed", active=False,
            now=datetime.now(UTC),
        )  # fmt: skip
    out = cli.ok(
        "search", "Metrics.validation:accuracy > 0.95 and Tags.team exists",
        "--sort", "Metrics.validation:accuracy", "--order", "Descending",
    ).stdout  # fmt: skip
    assert out.index("c") < out.index("0.99") and "0.97" in out and " b " not in out
    assert out.find("│ c") < out.find("│ a")
    bad = cli("search", "Metrics.validation:accuracy >")
    assert bad.exit_code != 0 and "expected a value" in bad.output
