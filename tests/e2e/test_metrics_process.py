"""A script's metric lines over several epochs, as series through a real process backend."""

from __future__ import annotations

import pytest

from orchestrator.errors import ValidationError
from tests.e2e.conftest import RunningServer, script_job

pytestmark = pytest.mark.slow

EPOCHS_SCRIPT = """
import time
for epoch in range(1, 5):
    print("Epoch %d/4" % epoch, flush=True)
    print("epoch=%d train_loss=%.3f val_acc=%.2f" % (epoch, 1.0 / epoch, 0.5 + epoch / 10),
          flush=True)
    time.sleep(0.02)
print("val_acc=oops", flush=True)
"""


def test_metric_series_of_a_script_over_several_epochs(server: RunningServer) -> None:
    c = server.client()
    script_job(
        c,
        "series-job",
        EPOCHS_SCRIPT,
        AlgorithmSpecification={
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "train:loss", "Regex": r"train_loss=(\S+)"},
                {"Name": "validation:accuracy", "Regex": r"val_acc=(\S+)"},
            ],
        },
    )
    job = c.wait_for_training_job("series-job", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    resp = c.training_job_metrics("series-job")
    by_name = {m.MetricName: m.Points for m in resp.Metrics}
    assert set(by_name) == {"train:loss", "validation:accuracy"}
    loss = by_name["train:loss"]
    assert [(p.Step, p.Epoch, p.Value) for p in loss] == [
        (0, 1, 1.0), (1, 2, 0.5), (2, 3, 0.333), (3, 4, 0.25),
    ]  # fmt: skip
    assert [p.Value for p in by_name["validation:accuracy"]] == [0.6, 0.7, 0.8, 0.9]
    times = [p.Timestamp for p in loss]
    assert times == sorted(times)
    assert job.TrainingStartTime is not None
    assert job.TrainingEndTime is not None
    assert job.TrainingStartTime <= times[0] <= times[-1] <= job.TrainingEndTime
    # The final metric is the last point, stamped with the time its line was written.
    final = {m.MetricName: m for m in job.FinalMetricDataList}
    assert final["train:loss"].Value == loss[-1].Value
    assert final["train:loss"].Timestamp == loss[-1].Timestamp
    only = c.training_job_metrics("series-job", metric="validation:accuracy")
    assert [m.MetricName for m in only.Metrics] == ["validation:accuracy"]
    with pytest.raises(ValidationError, match="train:loss, validation:accuracy"):
        c.training_job_metrics("series-job", metric="nope")
