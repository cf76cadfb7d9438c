"""The controller's pass cadence while a tuning job runs: a trial that ends in a pass makes the
next pass run at once (tuning jobs are reconciled before training jobs, so only the next pass
lets the tuning job see the freed slot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.controller.plan.tuning import RUNNING_RESYNC
from orchestrator.testing import local_control_plane

SPEC: dict[str, Any] = {
    "HyperParameterTuningJobName": "cadence",
    "HyperParameterTuningJobConfig": {
        "Strategy": "Random",
        "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
        "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
        "ParameterRanges": {
            "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]
        },
        "RandomSeed": 3,
    },
    "TrainingJobDefinition": {
        "AlgorithmSpecification": {
            "TrainingImage": "img:1",
            "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
        },
    },
}


def running(backend: Any) -> list[str]:
    return [name for name, job in backend.jobs.items() if job.state == "running"]


def test_a_trial_that_ends_runs_the_next_pass_at_once(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as lcp:
        r = lcp.client._http.post("/api/v1/hyper-parameter-tuning-jobs", json=SPEC)
        assert r.status_code == 201, r.text
        backend = lcp.plane.backend
        lcp.controller.run_pass()
        [first] = running(backend)
        # Nothing ended: the tuning job's own resync.
        assert lcp.controller.run_pass() == RUNNING_RESYNC
        backend.complete(first, metrics={"loss": 0.5})
        # The pass that sees the trial end asks for the next one at once ...
        assert lcp.controller.run_pass() == 0.0
        # ... in which the tuning job launches the second trial.
        lcp.controller.run_pass()
        [second] = running(backend)
        assert second != first
        backend.complete(second, metrics={"loss": 0.25})
        assert lcp.controller.run_pass() == 0.0
        lcp.controller.run_pass()
        described = lcp.client._http.get("/api/v1/hyper-parameter-tuning-jobs/cadence").json()
        assert described["HyperParameterTuningJobStatus"] == "Completed", described
        # The tuning job is over: an ended trial no longer forces a pass.
        assert lcp.controller.run_pass() > 0.0
