"""The usage report, exact to the second: known training jobs, a transform job and an endpoint
(scaled out, to zero, woken, deleted) run on the fake backend under a fake clock, and the
report's instance-seconds, memory, predictions and costs are checked against the timeline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from orchestrator import metrics
from orchestrator.api.usage import UsageFlusher, usage_report
from orchestrator.cli import app
from orchestrator.cli.common import State
from orchestrator.errors import ValidationError
from orchestrator.resources.endpoints import UpdateEndpointWeightsAndCapacitiesRequest
from orchestrator.store.state import StateStore
from orchestrator.testing import (
    FakeClock,
    LocalControlPlane,
    local_control_plane,
    model_spec,
    training_job_spec,
    transform_job_spec,
)
from orchestrator.usage import DEFAULT_PRICES, PriceTable
from orchestrator.usage.models import UsageGroup, UsageReport

T0 = datetime(2026, 11, 2, tzinfo=UTC)
DAY = (T0 + timedelta(days=1)).isoformat()


def passes(cp: LocalControlPlane, n: int = 3) -> None:
    for _ in range(n):
        cp.controller.run_pass()


def flusher(cp: LocalControlPlane) -> UsageFlusher:
    return next(s for s in cp.plane.services if isinstance(s, UsageFlusher))


def run_timeline(cp: LocalControlPlane, clock: FakeClock) -> None:
    """t=0: two training jobs, a transform job and an endpoint start (1 instance);
    t=100: the endpoint goes to 2 instances (and the spot job is preempted, relaunched at once);
    t=250: the jobs complete; t=700: the endpoint, idle 600 s since t=0, scales to zero;
    t=1000: 5 predictions wake it (to its override's 2 instances); t=1300: it is
    deleted."""
    c = cp.client
    c.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
    c.upload_bytes(b"x", "s3://orchestrator/m/model.tar.gz")
    c.upload_bytes(b"a,b\n", "s3://orchestrator/in/a.csv")
    c.create_training_job(
        training_job_spec(
            "train-a",
            ResourceConfig={
                "InstanceType": "ml.m5.xlarge",
                "InstanceCount": 2,
                "VolumeSizeInGB": 1,
            },
            Tags=[{"Key": "tenant", "Value": "acme"}],
        )
    )
    c.create_training_job(
        training_job_spec(
            "train-spot",
            EnableManagedSpotTraining=True,
            ResourceConfig={
                "InstanceType": "ml.c5.2xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 1,
            },
            StoppingCondition={"MaxRuntimeInSeconds": 3600, "MaxWaitTimeInSeconds": 7200},
        )
    )
    c.create_model(model_spec("m", "s3://orchestrator/m/model.tar.gz"))
    c.create_transform_job(
        transform_job_spec(
            "tj", "m", "s3://orchestrator/in/", "s3://orchestrator/out/",
            TransformResources={"InstanceType": "ml.c5.xlarge", "InstanceCount": 2},
        )
    )  # fmt: skip
    scaling = {"MinInstanceCount": 0, "MaxInstanceCount": 3, "ScaleToZeroAfterIdleSeconds": 600}
    c.create_endpoint_config(
        {
            "EndpointConfigName": "cfg",
            "ProductionVariants": [
                {
                    "VariantName": "main",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "ManagedInstanceScaling": scaling,
                }
            ],
        }
    )
    c.create_endpoint(
        EndpointName="ep", EndpointConfigName="cfg", Tags=[{"Key": "tenant", "Value": "acme"}]
    )
    passes(cp)
    clock.advance(100)
    cp.plane.update_endpoint_weights_and_capacities(
        "ep",
        UpdateEndpointWeightsAndCapacitiesRequest.model_validate(
            {"DesiredWeightsAndCapacities": [{"VariantName": "main", "DesiredInstanceCount": 2}]}
        ),
    )
    c.preempt_training_job("train-spot")
    passes(cp)
    clock.advance(150)
    cp.backend.complete("train-a")
    cp.backend.complete("train-spot")
    for i in range(2):
        cp.backend.complete_transform_instance("tj", i)
    passes(cp)
    clock.advance(450)
    passes(cp)
    assert c.describe_endpoint("ep").ProductionVariants[0].CurrentInstanceCount == 0
    clock.advance(300)
    series = cp.plane.series
    assert series is not None
    at = clock.now().timestamp()
    for _ in range(5):
        series.record_invocation(
            "ep", "main", "cfg", status=200, model_us=1.0, overhead_us=1.0, at=at
        )
    flusher(cp).flush()
    passes(cp)
    assert c.describe_endpoint("ep").ProductionVariants[0].CurrentInstanceCount == 2
    clock.advance(300)
    c.delete_endpoint("ep")
    passes(cp)
    assert not [e for e in c.list_endpoints().Endpoints if e.EndpointName == "ep"]
    clock.advance(1000)


@pytest.fixture
def ran(tmp_path: Path) -> Iterator[LocalControlPlane]:
    clock = FakeClock(T0)
    # The flusher's thread waits an hour: the test flushes, at known times.
    with local_control_plane(tmp_path, clock=clock, usage_flush_seconds=3600) as cp:
        run_timeline(cp, clock)
        yield cp


def groups(report: UsageReport) -> dict[str, UsageGroup]:
    return {g.Group: g for g in report.Groups}


def test_report_by_resource_is_exact_to_the_second(ran: LocalControlPlane) -> None:
    report = ran.client.get_usage(T0.isoformat(), DAY, "resource")
    by = groups(report)
    assert set(by) == {
        "TrainingJob/train-a", "TrainingJob/train-spot", "TransformJob/tj", "Endpoint/ep/main"
    }  # fmt: skip
    # Training: BillableTimeInSeconds (250) x InstanceCount.
    assert by["TrainingJob/train-a"].InstanceSeconds == 500
    assert by["TrainingJob/train-spot"].BillableSeconds == 250
    # Transform: 2 instances x 250 s.
    assert by["TransformJob/tj"].InstanceSeconds == 500
    # Endpoint: 1 x 100 s + 2 x 600 s (to zero at 700) + 0 x 300 s + 2 x 300 s (woken at 1000,
    # deleted at 1300).
    ep = by["Endpoint/ep/main"]
    assert ep.InstanceSeconds == 100 + 2 * 600 + 2 * 300
    assert ep.Predictions == 5
    assert ep.MemoryGiBSeconds == 1900 * 8  # ml.m5.large: 8 GiB
    price = DEFAULT_PRICES
    assert ep.Cost == pytest.approx(price["ml.m5.large"] * 1900 / 3600)
    assert by["TrainingJob/train-a"].Cost == pytest.approx(price["ml.m5.xlarge"] * 500 / 3600)
    # Spot: the default 70% discount.
    spot = by["TrainingJob/train-spot"]
    assert spot.Cost == pytest.approx(price["ml.c5.2xlarge"] * 0.3 * 250 / 3600)
    assert spot.SpotSavings == pytest.approx(price["ml.c5.2xlarge"] * 0.7 * 250 / 3600)
    assert report.PriceSource.startswith("defaults")
    # The object store now: the code (1 byte), the model (1) and the input (4).
    storage = {b.Bucket: b for b in report.Storage}
    assert (storage["orchestrator"].Objects, storage["orchestrator"].Bytes) == (3, 6)
    assert storage["orchestrator"].MonthlyCost == pytest.approx(6 / 1e9 * 0.023)
    ran.client.upload_bytes(b"x" * 1000, "s3://orchestrator/more/blob")
    grown = ran.client.get_usage(T0.isoformat(), DAY, "resource")
    assert {b.Bucket: b.Bytes for b in grown.Storage}["orchestrator"] == 1006
    assert ran.client.get_usage(T0.isoformat(), DAY, storage=False).Storage == []


def test_a_window_clips_the_intervals(ran: LocalControlPlane) -> None:
    since, until = (T0 + timedelta(seconds=50)).isoformat(), (T0 + timedelta(seconds=400))
    by = groups(ran.client.get_usage(since, until.isoformat(), "resource"))
    assert by["Endpoint/ep/main"].InstanceSeconds == 50 + 2 * 300
    assert by["TransformJob/tj"].InstanceSeconds == 2 * 200
    # Jobs are counted in the window they ended in (t=250).
    assert by["TrainingJob/train-a"].InstanceSeconds == 500
    at_end = (T0 + timedelta(seconds=250)).isoformat()
    assert groups(ran.client.get_usage(at_end, DAY))["TrainingJob/train-a"].InstanceSeconds == 500
    assert "TrainingJob/train-a" not in groups(ran.client.get_usage(T0.isoformat(), at_end))
    late = groups(ran.client.get_usage((T0 + timedelta(seconds=800)).isoformat(), DAY))
    assert set(late) == {"Endpoint/ep/main"}
    assert late["Endpoint/ep/main"].InstanceSeconds == 2 * 300


def test_grouped_by_instance_type_and_tenant(ran: LocalControlPlane) -> None:
    by_type = groups(ran.client.get_usage(T0.isoformat(), DAY, "instance-type"))
    seconds = {k: g.InstanceSeconds for k, g in by_type.items()}
    assert seconds == {
        "ml.m5.xlarge": 500, "ml.c5.2xlarge": 250, "ml.c5.xlarge": 500, "ml.m5.large": 1900
    }  # fmt: skip
    by_tenant = groups(ran.client.get_usage(T0.isoformat(), DAY, "tenant"))
    assert {k: g.InstanceSeconds for k, g in by_tenant.items()} == {
        "acme": 500 + 1900, "(untagged)": 250 + 500
    }  # fmt: skip
    assert by_tenant["acme"].Predictions == 5


def test_counters_add_up_to_the_report(ran: LocalControlPlane) -> None:
    def value(name: str, **labels: str) -> float:
        return metrics.REGISTRY.get_sample_value(name, labels) or 0.0

    labels = {"kind": "Endpoint", "instance_type": "ml.m5.large"}
    before = value("orch_usage_instance_seconds_total", **labels)
    flusher(ran).flush()
    after = value("orch_usage_instance_seconds_total", **labels)
    # The timeline's flush (t=1000) counted [0, 1000): 1 x 100 + 2 x 600; this one (t=2300)
    # counts [1000, 2300): 2 x 300 until the delete. Windows never overlap: nothing twice.
    assert after - before == 2 * 300
    again = value("orch_usage_instance_seconds_total", **labels)
    flusher(ran).flush()
    assert value("orch_usage_instance_seconds_total", **labels) == again
    assert value("orch_usage_predictions_total", endpoint="ep") >= 5
    rows = ran.plane.store.predictions(T0, T0 + timedelta(days=1))  # type: ignore[union-attr]
    assert [(e, v, n) for e, v, _h, n in rows] == [("ep", "main", 5)]


def _get(cp: LocalControlPlane, **params: Any) -> httpx.Response:
    return httpx.get(
        f"{cp.url}/api/v1/usage", params=params, headers={"Authorization": f"Bearer {cp.api_key}"}
    )


def test_bad_windows_and_group_by_are_400_naming_the_field(tmp_path: Path) -> None:
    with local_control_plane(tmp_path, clock=FakeClock(T0)) as cp:
        r = _get(cp, Since="2026-11-05", Until="2026-11-01")
        assert r.status_code == 400, r.text
        assert "Since" in r.text and "before Until" in r.text
        r = _get(cp, Since="2026-11-01", GroupBy="project")
        assert r.status_code == 400 and "GroupBy" in r.text and "instance-type" in r.text
        r = _get(cp, Since="last tuesday")
        assert r.status_code == 400 and "Since" in r.text and "ISO 8601" in r.text
        r = _get(cp, Since="2026-11-01", Until="soon")
        assert r.status_code == 400 and "Until" in r.text
        empty = cp.client.get_usage("2026-10-01", "2026-11-01")
        assert empty.Groups == []


def test_a_type_missing_from_the_price_file_has_no_price(tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  ml.m5.xlarge: 1.0\n")
    clock = FakeClock(T0)
    settings = {"usage_price_file": prices, "usage_flush_seconds": 3600}
    with local_control_plane(tmp_path / "cp", clock=clock, **settings) as cp:
        run_timeline(cp, clock)
        report = cp.client.get_usage(T0.isoformat(), DAY, "instance-type")
        by = groups(report)
        assert report.PriceSource == str(prices)
        assert by["ml.m5.xlarge"].Cost == pytest.approx(500 / 3600)
        ep = by["ml.m5.large"]
        assert (ep.Cost, ep.NoPrice, ep.InstanceSeconds) == (None, ["ml.m5.large"], 1900)
        out = cli(
            cp, "usage", "--since", T0.isoformat(), "--until", DAY, "--group-by", "instance-type"
        )
        assert "ml.m5.large" in out and "no price" in out and "0.1389" in out, out


def test_a_malformed_price_file_fails_the_start_and_the_report(tmp_path: Path) -> None:
    bad = tmp_path / "prices.yaml"
    bad.write_text("prices:\n  ml.m5.large: cheap\n")
    with (
        pytest.raises(ValidationError) as e,
        local_control_plane(tmp_path / "a", usage_price_file=bad),
    ):
        pass
    assert str(bad) in e.value.message and "prices.ml.m5.large" in e.value.message
    good = tmp_path / "ok.yaml"
    good.write_text("prices: {}\n")
    with local_control_plane(tmp_path / "b", usage_price_file=good) as cp:
        good.write_text("prices:\n  ml.m5.large: [1\n")  # broken after the start
        r = _get(cp, Since="2026-11-01")
        assert r.status_code == 400 and str(good) in r.text and "line 3" in r.text, r.text


def cli(cp: LocalControlPlane, *args: str) -> str:
    state = State(endpoint_url=cp.url, api_key=cp.api_key)
    result = CliRunner().invoke(app, list(args), obj=state, env={"COLUMNS": "200"})
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_orch_usage_table_and_json(ran: LocalControlPlane) -> None:
    out = cli(ran, "usage", "--since", T0.isoformat(), "--until", DAY)
    for text in ("Endpoint/ep/main", "TrainingJob/train-a", "TransformJob/tj", "1900", "0.0607"):
        assert text in out, out
    doc = json.loads(
        cli(ran, "-o", "json", "usage", "--since", "2026-11-02", "--group-by", "tenant")
    )
    assert doc["GroupBy"] == "tenant"
    assert {g["Group"]: g["InstanceSeconds"] for g in doc["Groups"]} == {
        "acme": 2400, "(untagged)": 750
    }  # fmt: skip
    state = State(endpoint_url=ran.url, api_key=ran.api_key)
    bad = CliRunner().invoke(
        app, ["usage", "--since", "2026-11-02", "--group-by", "nope"], obj=state
    )
    assert bad.exit_code != 0 and "GroupBy" in bad.output, bad.output


def test_the_records_outlive_the_control_plane(tmp_path: Path) -> None:
    """A restart (a new store over the same database) reports the same: the count changes
    and the flushed predictions are durable, and a clean stop flushes what was left."""
    clock = FakeClock(T0)
    with local_control_plane(tmp_path, clock=clock, usage_flush_seconds=3600) as cp:
        run_timeline(cp, clock)
        first = cp.client.get_usage(T0.isoformat(), DAY, storage=False)
        url = cp.plane.store.url  # type: ignore[union-attr]
        series = cp.plane.series
        assert series is not None
        series.record_invocation(
            "gone", "v", "c", status=200, model_us=1.0, overhead_us=1.0, at=clock.now().timestamp()
        )  # not flushed yet: the server's stop flushes it
    store = StateStore(url)
    try:
        again = usage_report(store, PriceTable(), T0, T0 + timedelta(days=1), "resource")
    finally:
        store.close()
    by = groups(again)
    assert by.pop("Endpoint/gone/v").Predictions == 1
    assert list(by.values()) == first.Groups
