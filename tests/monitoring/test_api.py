"""GET /api/v1/endpoints/{name}/metrics, Client.endpoint_metrics and `orch endpoints metrics`
against an in-process control plane whose series store runs on fake time."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.cli import app as cli_app
from orchestrator.cli.common import State
from orchestrator.client import Client
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.monitoring.series import SeriesStore
from orchestrator.settings import Settings
from orchestrator.testing import FakeClock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's testclient warns about httpx at import
    from fastapi.testclient import TestClient

T0 = datetime(2026, 1, 1, tzinfo=UTC)
URL = "/api/v1/endpoints/ep-1/metrics"


@dataclass
class Env:
    http: TestClient
    client: Client
    series: SeriesStore
    clock: FakeClock
    key: str

    def get(self, path: str = URL, **params: object) -> tuple[int, dict[str, object]]:
        r = self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.key}"})
        return r.status_code, r.json()

    def orch(self, *args: str) -> tuple[int, str, str]:
        state = State("http://testserver", self.key, transport=self.http._transport)
        result = CliRunner().invoke(cli_app, list(args), obj=state, env={"COLUMNS": "200"})
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    plane = build_control_plane(settings)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(UTC))
    app = create_app(plane, run_controller=False)
    clock = FakeClock(T0 + timedelta(minutes=5))
    app.state.series = series = SeriesStore(clock=clock)
    with TestClient(app) as http:
        api = Client("http://testserver", key, transport=http._transport)
        api.create_model(ModelName="m", PrimaryContainer={"Image": "example/serve:1"})
        api.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "v1", "ModelName": "m"}],
        )
        api.create_endpoint(EndpointName="ep-1", EndpointConfigName="c")
        for i in range(120):
            series.record_invocation("ep-1", "v1", "c", status=500 if i < 6 else 200,
                                     model_us=1000.0 + i, overhead_us=50.0,
                                     at=T0.timestamp() + i)  # fmt: skip
        try:
            yield Env(http, api, series, clock, key)
        finally:
            api.close()
            plane.store.close()


def test_statistics_by_period(env: Env) -> None:
    status, body = env.get(
        MetricName="Invocation5XXErrors", Statistics=["Sum", "Average"], Period=60,
        StartTime="2026-01-01T00:00:00Z", EndTime=str(T0.timestamp() + 180),
    )  # fmt: skip
    assert status == 200, body
    assert body == {
        "Label": "Invocation5XXErrors",
        "Datapoints": [
            {"Timestamp": "2026-01-01T00:00:00Z", "Sum": 6.0, "Average": 0.1, "Unit": "None"},
            {"Timestamp": "2026-01-01T00:01:00Z", "Sum": 0.0, "Average": 0.0, "Unit": "None"},
        ],
    }


def test_percentiles_come_back_as_extended_statistics(env: Env) -> None:
    status, body = env.get(MetricName="ModelLatency", Statistics=["p99", "Maximum"],
                           Period=300, VariantName="v1")  # fmt: skip
    assert status == 200, body
    [point] = body["Datapoints"]  # type: ignore[misc]
    assert point["Maximum"] == 1119.0
    assert point["ExtendedStatistics"]["p99"] == pytest.approx(1118, rel=0.02)
    assert point["Unit"] == "Microseconds"


def test_defaults_are_the_last_hour_and_sum(env: Env) -> None:
    status, body = env.get(MetricName="Invocations")
    assert status == 200
    assert [p["Sum"] for p in body["Datapoints"]] == [60.0, 60.0]  # type: ignore[attr-defined]
    env.clock.advance(3 * 3600)
    assert env.get(MetricName="Invocations")[1]["Datapoints"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "MetricName"),
        ({"MetricName": "Latency"}, "MetricName"),
        ({"MetricName": "ModelLatency", "Statistics": "Median"}, "Statistics"),
        ({"MetricName": "Invocations", "Statistics": "p99"}, "Statistics"),
        ({"MetricName": "Invocations", "Period": "0"}, "Period"),
        ({"MetricName": "Invocations", "Period": "1.5"}, "Period"),
        ({"MetricName": "Invocations", "Period": "1", "StartTime": "2025-12-31T00:00:00Z"},
         "Period"),
        ({"MetricName": "Invocations", "StartTime": "2026-01-01T01:00:00Z",
          "EndTime": "2026-01-01T00:00:00Z"}, "StartTime"),
        ({"MetricName": "Invocations", "StartTime": "yesterday"}, "StartTime"),
        ({"MetricName": "Invocations", "EndTime": "1e300"}, "EndTime"),
    ],
)  # fmt: skip
def test_bad_parameters_are_400_naming_them(env: Env, params: dict[str, str], field: str) -> None:
    status, body = env.get(**params)
    assert status == 400, body
    assert body["code"] == "ValidationException"
    assert body["field"] == field
    assert str(body["message"]).startswith(f"{field}:")


def test_unknown_endpoint_is_404_and_a_key_is_needed(env: Env) -> None:
    status, body = env.get("/api/v1/endpoints/nope/metrics", MetricName="Invocations")
    assert status == 404 and body["code"] == "ResourceNotFound"
    r = env.http.get(URL, params={"MetricName": "Invocations"})
    assert r.status_code == 401


def test_client(env: Env) -> None:
    answer = env.client.endpoint_metrics(
        "ep-1", "OverheadLatency", statistics=("Average", "p50"), start=T0,
        end=T0 + timedelta(minutes=2), variant="v1",
    )  # fmt: skip
    assert answer.Label == "OverheadLatency"
    assert [(p.Timestamp, p.Average) for p in answer.Datapoints] == [
        (T0, 50.0), (T0 + timedelta(minutes=1), 50.0),
    ]  # fmt: skip
    assert answer.Datapoints[0].ExtendedStatistics == {"p50": 50.0}
    with pytest.raises(ValidationError) as e:
        env.client.endpoint_metrics("ep-1", "ModelLatency", period=-5)
    assert e.value.field == "Period"
    with pytest.raises(NotFoundError):
        env.client.endpoint_metrics("nope", "Invocations")


def test_cli_table_and_json(env: Env) -> None:
    code, out, err = env.orch("endpoints", "metrics", "ep-1", "--metric", "ModelLatency",
                              "--stat", "Average", "--stat", "p99", "--start",
                              "2026-01-01T00:00:00Z", "--end", "2026-01-01T00:03:00Z")  # fmt: skip
    assert code == 0, err
    assert "ep-1 ModelLatency (Microseconds, 60 s)" in out
    assert "Average" in out and "p99" in out and "1.03 ms" in out  # 1000..1059 us, averaged
    code, out, err = env.orch("-o", "json", "endpoints", "metrics", "ep-1", "-m", "Invocations",
                              "--period", "120")  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["Datapoints"][0]["Sum"] == 120.0
    code, out, _ = env.orch("endpoints", "metrics", "ep-1", "-m", "Invocations", "--start",
                            "2026-01-01T03:00:00Z", "--end", "2026-01-01T04:00:00Z")  # fmt: skip
    assert code == 0 and "no datapoints" in out


def test_cli_errors_name_the_option_or_parameter(env: Env) -> None:
    code, _, err = env.orch("endpoints", "metrics", "ep-1", "-m", "Invocations", "-s", "p99")
    assert code == 1
    assert "Statistics: percentiles" in err and "field: Statistics" in err
    code, _, err = env.orch("endpoints", "metrics", "ep-1", "--start", "soon")
    assert code == 2 and "--start" in err
