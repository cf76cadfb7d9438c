"""FinalMetricDataList: each metric's last value, stamped with when that value was written."""

from __future__ import annotations

from core_builders import NOW, at, desired_job, exited, job_state

from orchestrator.controller.plan.training import TrainingPolicy, plan_training_job
from orchestrator.resources.training import TrainingJobState

LAUNCHED = job_state(Attempt=1, TrainingStartTime=NOW)


def test_each_final_metric_has_the_time_its_value_was_written() -> None:
    observed = exited(
        outcome="completed",
        metrics={"loss": 0.5, "acc": 0.9, "f1": 0.7},
        # acc was written at 40 s; loss's time is after the end (clocks apart): the end;
        # f1's time is not known (a Kubernetes pod log): the end, as before.
        metric_times={"acc": at(40), "loss": at(500)},
    )
    plan = plan_training_job(
        desired_job(status=LAUNCHED), observed, at(101), TrainingPolicy(stop_grace_seconds=30)
    )
    st = TrainingJobState.model_validate(plan.status)
    assert [(m.MetricName, m.Value, m.Timestamp) for m in st.FinalMetricDataList] == [
        ("acc", 0.9, at(40)),
        ("f1", 0.7, at(100)),
        ("loss", 0.5, at(100)),
    ]
