"""``docs/conformance.md`` is what the suite declares, and the declarations hold together."""

from __future__ import annotations

import pytest

from orchestrator.controller.plan.support import BACKENDS, RULES
from tests.conformance.declarations import REGISTRY, NotRunnable, Refused, Runs
from tests.conformance.harness import Harness
from tests.conformance.table import DOC, HARNESSES, render, scenario_ids

ISSUE_SCENARIOS = {
    "train_and_complete",
    "fail_with_reason",
    "stop",
    "max_runtime",
    "two_instances",
    "network_isolation",
    "deploy_and_invoke",
    "weights",
    "shadow",
    "scale_to_zero_and_wake",
    "canary_update_with_rollback",
    "delete",
    # Hyperparameter tuning (issue 13): trials are training jobs of each backend.
    "tune_and_complete",
    "stop_a_tuning_job",
    "every_trial_fails",
    # Training at scale (issue 14).
    "checkpoints_while_running",
    "resource_usage",
    "distributed_environment",
    "retry_by_exit_code",
    "queue",
    "managed_spot",
    "managed_spot_killed_after_the_grace",
    # Batch transform (issue 15).
    "transform_and_complete",
    "transform_with_data_processing",
    "transform_fails_with_reason",
    "stop_a_transform_job",
    "transform_resumes_after_an_instance_dies",
    # Data sources (issue 19): snapshots are training jobs of each backend.
    "data_source_from_objects",
    "data_source_from_a_loopback_database",
}


def test_docs_conformance_md_is_generated_from_the_suite() -> None:
    assert DOC.read_text() == render(), (
        "docs/conformance.md differs from what the suite declares: regenerate it with "
        "`PYTHONPATH=. python -m tests.conformance.table`"
    )


def test_every_scenario_is_declared_on_every_backend() -> None:
    assert set(scenario_ids()) == ISSUE_SCENARIOS
    for s in REGISTRY.values():
        assert set(s.cells) == set(BACKENDS), s.id
        assert s.title and s.checks, s.id
        for backend, cell in s.cells.items():
            assert isinstance(cell, Runs | Refused | NotRunnable), (s.id, backend)
            assert cell.describe().strip(), (s.id, backend)


@pytest.mark.parametrize("sid", sorted(ISSUE_SCENARIOS))
def test_a_refused_cell_is_a_rule_that_refuses_there_and_only_there(sid: str) -> None:
    """A cell says "refused" exactly where plan/support.py refuses the field, and the scenario
    runs on every backend that honours it."""
    s = REGISTRY[sid]
    refused = {b: c for b, c in s.cells.items() if isinstance(c, Refused)}
    for backend, cell in refused.items():
        rule = cell.rule
        assert backend in rule.refused_on, f"{sid}: {rule.field} is honoured on {backend}"
        for other in set(BACKENDS) - rule.refused_on:
            assert isinstance(s.cells[other], Runs), f"{sid} must run on {other}"
    fields = {c.field for c in refused.values()}
    assert len(fields) <= 1, f"{sid} is refused for several fields: {fields}"


def test_every_refused_cell_names_a_rule_of_support() -> None:
    rules = {(r.kind, r.field) for r in RULES}
    for s in REGISTRY.values():
        for cell in s.cells.values():
            if isinstance(cell, Refused):
                assert (cell.kind, cell.field) in rules, (s.id, cell)


def test_the_parts_a_scenario_uses_are_harness_methods() -> None:
    for s in REGISTRY.values():
        for part in s.uses:
            assert callable(getattr(Harness, part, None)), f"{s.id} uses {part!r}: no such method"


def test_every_gap_says_what_and_why_and_some_scenario_uses_it() -> None:
    used = {part for s in REGISTRY.values() for part in s.uses}
    for backend, harness in HARNESSES.items():
        assert harness.backend == backend
        for part, (what, why) in harness.gaps.items():
            assert what.strip() and why.strip(), (backend, part)
            assert part in used, f"{backend} declares a gap {part!r} that no scenario uses"


def test_the_process_and_docker_harnesses_declare_no_gap() -> None:
    assert HARNESSES["process"].gaps == {} and HARNESSES["docker"].gaps == {}


def test_the_documented_command_checks_the_file() -> None:
    """The doc's own command (here with --check, which writes nothing) runs as documented."""
    import os
    import subprocess
    import sys

    root = DOC.parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-m", "tests.conformance.table", "--check"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stdout + out.stderr
