"""REST: a job's stored scores and its metrics at a threshold, the built-in algorithms'
catalogue, and metric series thinned to MaxPoints; every bad input named."""

from __future__ import annotations

import json
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from asgi_lifespan import LifespanManager
from core_builders import training_doc
from sklearn import metrics as sk

from orchestrator.algorithms import evaluation
from orchestrator.algorithms.hyperparameters import SPECS
from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.settings import Settings
from orchestrator.testing import FakeClock
from orchestrator.training.metricseries import MetricPoint, downsample

pytestmark = pytest.mark.anyio
JOBS = "/api/v1/training-jobs"
ALGORITHMS = "/api/v1/algorithms"
OUTPUT = "s3://orchestrator/{name}/output/model.tar.gz"


class Api:
    def __init__(
        self, client: httpx.AsyncClient, fake: FakeBackend, plane: ControlPlane, key: str
    ) -> None:
        self.client, self.fake, self.plane = client, fake, plane
        self.auth = {"Authorization": f"Bearer {key}"}

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    fake = FakeBackend(clock=FakeClock())
    plane = build_control_plane(settings, backend=fake)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch") as c,
    ):
        yield Api(c, fake, plane, key)
    plane.store.close()


def _scores(n: int = 400) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, size=n)
    s = np.clip(y * 0.3 + rng.uniform(size=n) * 0.7, 0, 1)
    s[:10] = 0.42  # ties at the threshold asked for below
    return y.tolist(), s.tolist()


async def _completed(api: Api, name: str, scores: dict[str, Any] | None = None) -> None:
    r = await api.client.post(
        JOBS,
        json=training_doc(name, AlgorithmSpecification={"TrainingImage": "x:1"}),
        headers=api.auth,
    )
    assert r.status_code == 201, r.text
    api.plane.controller.run_pass()
    artifact = OUTPUT.format(name=name)
    api.fake.complete(name, artifact=artifact)
    api.plane.controller.run_pass()
    if scores is not None:  # as a built-in binary classifier's upload leaves them
        uri = artifact.rsplit("/", 1)[0] + "/evaluation_scores.json"
        api.plane.objects.put_bytes(uri, json.dumps(scores).encode())


# --- scores -----------------------------------------------------------------------------------
async def test_scores_of_a_split(api: Api) -> None:
    labels, scores = _scores()
    await _completed(api, "bin", {"test": {"labels": labels, "scores": scores, "rows": 400}})
    r = await api.get(f"{JOBS}/bin/evaluation/scores", Split="test")
    assert r.status_code == 200, r.text
    assert r.json() == {"Split": "test", "Labels": labels, "Scores": scores, "Rows": 400}
    assert (await api.get(f"{JOBS}/bin/evaluation/scores")).json()["Split"] == "test"


async def test_scores_bad_inputs(api: Api) -> None:
    labels, scores = _scores(20)
    await _completed(api, "bin", {"test": {"labels": labels, "scores": scores}})
    r = await api.get(f"{JOBS}/bin/evaluation/scores", Split="validation")  # not stored
    assert r.status_code == 400 and r.json()["field"] == "Split"
    assert "has scores for test" in r.json()["message"]
    r = await api.get(f"{JOBS}/bin/evaluation/scores", Split="train")  # not a split
    assert r.status_code == 400 and r.json()["field"] == "Split"
    assert "validation" in r.json()["message"] and "test" in r.json()["message"]
    await _completed(api, "scripted")  # no scores file: not a built-in binary classifier
    r = await api.get(f"{JOBS}/scripted/evaluation/scores")
    assert r.status_code == 404 and "evaluation_scores.json" in r.json()["message"]
    r = await api.get(f"{JOBS}/nope/evaluation/scores")
    assert r.status_code == 404 and "nope" in r.json()["message"]
    assert (await api.client.get(f"{JOBS}/bin/evaluation/scores")).status_code == 401


# --- threshold --------------------------------------------------------------------------------
@pytest.mark.parametrize("threshold", [0.0, 0.42, 0.5, 1.0])
async def test_threshold_metrics_are_binary_metrics_of_the_stored_scores(
    api: Api, threshold: float
) -> None:
    labels, scores = _scores()
    await _completed(api, "bin", {"validation": {"labels": labels, "scores": scores}})
    r = await api.get(f"{JOBS}/bin/evaluation/threshold", Split="validation", Threshold=threshold)
    assert r.status_code == 200, r.text
    got = r.json()
    want = evaluation.binary_metrics(np.array(labels), np.array(scores), threshold)
    for k in ("accuracy", "precision", "recall", "f1"):
        assert got[k] == want[k]
    for k in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
        assert got[k] == want[k]
    assert got["confusion_matrix"] == want["confusion_matrix"]
    pred = (np.array(scores) >= threshold).astype(int)  # positive at score >= Threshold
    assert got["confusion_matrix"] == sk.confusion_matrix(labels, pred, labels=[0, 1]).tolist()
    fp, tn = want["false_positives"], want["true_negatives"]
    assert got["false_positive_rate"] == pytest.approx(fp / (fp + tn) if fp + tn else 0.0)
    assert (got["Split"], got["Threshold"], got["Rows"]) == ("validation", threshold, 400)
    assert set(got) >= {
        "Split", "Threshold", "accuracy", "precision", "recall", "f1", "false_positive_rate",
        "true_positives", "false_positives", "true_negatives", "false_negatives",
        "confusion_matrix",
    }  # fmt: skip


async def test_threshold_bad_inputs(api: Api) -> None:
    labels, scores = _scores(30)
    await _completed(api, "bin", {"test": {"labels": labels, "scores": scores}})
    for bad in (-0.1, 1.5, "nan", "high"):
        r = await api.get(f"{JOBS}/bin/evaluation/threshold", Threshold=bad)
        assert r.status_code == 400, (bad, r.text)
        assert r.json()["field"] == "Threshold", r.text
    r = await api.get(f"{JOBS}/bin/evaluation/threshold")  # Threshold is required
    assert r.status_code == 400 and r.json()["field"] == "Threshold"
    r = await api.get(f"{JOBS}/bin/evaluation/threshold", Threshold=0.5, Split="validation")
    assert r.status_code == 400 and r.json()["field"] == "Split"
    await _completed(api, "scripted")
    r = await api.get(f"{JOBS}/scripted/evaluation/threshold", Threshold=0.5)
    assert r.status_code == 404
    # the service checks the threshold too (callers other than the route)
    with pytest.raises(Exception, match="Threshold"):
        api.plane.training_job_threshold_metrics("bin", "test", 2.0)


async def test_threshold_of_an_empty_split_is_all_zero(api: Api) -> None:
    await _completed(api, "bin", {"test": {"labels": [], "scores": []}})
    r = await api.get(f"{JOBS}/bin/evaluation/threshold", Threshold=0.5)
    assert r.status_code == 200, r.text
    assert r.json()["confusion_matrix"] == [[0, 0], [0, 0]] and r.json()["Rows"] == 0


# --- algorithms -------------------------------------------------------------------------------
async def test_algorithms_list_every_builtin_with_its_hyperparameters(api: Api) -> None:
    r = await api.get(ALGORITHMS)
    assert r.status_code == 200, r.text
    algorithms = r.json()["Algorithms"]
    assert [a["Name"] for a in algorithms] == ["linear-learner", "mlp"]
    for a in algorithms:
        assert a["ProblemTypes"] == ["regressor", "binary_classifier", "multiclass_classifier"]
        assert {h["Name"] for h in a["Hyperparameters"]} == set(SPECS[a["Name"]])
        for h in a["Hyperparameters"]:
            assert set(h) == {
                "Name", "Type", "Default", "MinValue", "MaxValue", "Values", "Required",
                "Description",
            }  # fmt: skip
            assert h["Type"] in {"Integer", "Continuous", "Categorical", "Boolean", "FreeText"}
            assert h["Description"]
    ll = {h["Name"]: h for h in algorithms[0]["Hyperparameters"]}
    assert ll["predictor_type"]["Required"] is True
    assert ll["predictor_type"]["Type"] == "Categorical"
    assert ll["predictor_type"]["Values"] == [
        "regressor",
        "binary_classifier",
        "multiclass_classifier",
    ]
    assert (ll["epochs"]["Type"], ll["epochs"]["Default"]) == ("Integer", 100)
    assert (ll["epochs"]["MinValue"], ll["epochs"]["MaxValue"]) == (1, 10_000)
    assert ll["learning_rate"]["Type"] == "Continuous"
    assert ll["learning_rate"]["Default"] == 0.05
    assert ll["shuffle"] == {**ll["shuffle"], "Type": "Boolean", "Default": True}
    assert ll["label"]["Type"] == "FreeText" and ll["epochs"]["Required"] is False
    assert ll["num_models"]["Values"] == ["auto"] and ll["num_models"]["Default"] == "auto"
    one = await api.get(f"{ALGORITHMS}/mlp")
    assert one.status_code == 200 and one.json() == algorithms[1]


async def test_an_unknown_algorithm_is_a_404_listing_the_known_ones(api: Api) -> None:
    r = await api.get(f"{ALGORITHMS}/xgboost")
    assert r.status_code == 404
    message = r.json()["message"]
    assert "'xgboost'" in message and "linear-learner, mlp" in message
    assert (await api.client.get(ALGORITHMS)).status_code == 401


# --- MaxPoints --------------------------------------------------------------------------------
def _points(values: list[float]) -> list[MetricPoint]:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return [MetricPoint(t, v, i, None) for i, v in enumerate(values)]


def test_downsample_keeps_the_ends_and_each_buckets_extremes() -> None:
    values = [float(i % 7) for i in range(1000)]
    values[500] = 99.0  # a spike
    values[733] = -50.0  # a dip
    kept = downsample(_points(values), 40)
    assert len(kept) <= 40
    assert kept[0].step == 0 and kept[-1].step == 999
    assert [p.step for p in kept] == sorted(p.step for p in kept)
    assert {99.0, -50.0} <= {p.value for p in kept}
    assert downsample(_points([1.0, 2.0, 3.0]), 2) == [_points([1.0, 2.0, 3.0])[i] for i in (0, 2)]
    few = _points([1.0, 2.0])
    assert downsample(few, 10) == few
    with pytest.raises(ValueError):
        downsample(few, 1)


async def test_max_points_thins_each_series(api: Api) -> None:
    r = await api.client.post(
        JOBS,
        json=training_doc(
            "job-1",
            AlgorithmSpecification={
                "TrainingImage": "x:1",
                "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=(\S+)"}],
            },
        ),
        headers=api.auth,
    )
    assert r.status_code == 201, r.text
    lines = "".join(f"loss={9.0 if i == 250 else 1.0 / (i + 1)}\n" for i in range(600))
    api.fake.write_log("job-1", lines)
    full = (await api.get(f"{JOBS}/job-1/metrics")).json()["Metrics"][0]["Points"]
    assert len(full) == 600
    r = await api.get(f"{JOBS}/job-1/metrics", metric="loss", MaxPoints=50)
    assert r.status_code == 200, r.text
    points = r.json()["Metrics"][0]["Points"]
    assert len(points) <= 50
    assert points[0] == full[0] and points[-1] == full[-1]
    assert 9.0 in [p["Value"] for p in points]  # the spike survives
    same = await api.get(f"{JOBS}/job-1/metrics", MaxPoints=10_000)
    assert same.json()["Metrics"][0]["Points"] == full
    for bad in (1, 10_001, "many"):
        r = await api.get(f"{JOBS}/job-1/metrics", MaxPoints=bad)
        assert r.status_code == 400 and r.json()["field"] == "MaxPoints", r.text
    with pytest.raises(Exception, match="MaxPoints"):
        api.plane.training_job_metrics("job-1", None, 1)


# --- the client's methods ---------------------------------------------------------------------
def test_client_methods_over_the_routes(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's testclient warns about httpx at import
        from fastapi.testclient import TestClient

    from orchestrator.client import Client
    from orchestrator.errors import NotFoundError, ValidationError

    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    fake = FakeBackend(clock=FakeClock())
    plane = build_control_plane(settings, backend=fake)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(tz=UTC))
    labels, scores = _scores(50)
    try:
        with TestClient(create_app(plane, run_controller=False)) as http:
            c = Client("http://testserver", key, transport=http._transport)
            c.create_training_job(
                training_doc(
                    "bin",
                    AlgorithmSpecification={
                        "TrainingImage": "x:1",
                        "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=(\S+)"}],
                    },
                )
            )
            plane.controller.run_pass()
            fake.complete("bin", artifact=OUTPUT.format(name="bin"))
            plane.controller.run_pass()
            plane.objects.put_bytes(
                "s3://orchestrator/bin/output/evaluation_scores.json",
                json.dumps({"test": {"labels": labels, "scores": scores}}).encode(),
            )
            got = c.training_job_scores("bin")
            assert (got.Split, got.Labels, got.Scores, got.Rows) == ("test", labels, scores, 50)
            at = c.training_job_threshold_metrics("bin", 0.42)
            assert (
                at.confusion_matrix
                == evaluation.binary_metrics(np.array(labels), np.array(scores), 0.42)[
                    "confusion_matrix"
                ]
            )
            with pytest.raises(ValidationError) as info:
                c.training_job_threshold_metrics("bin", 0.5, split="validation")
            assert info.value.field == "Split"
            listed = c.list_algorithms()
            assert [a.Name for a in listed.Algorithms] == ["linear-learner", "mlp"]
            assert c.describe_algorithm("mlp") == listed.Algorithms[1]
            with pytest.raises(NotFoundError, match="linear-learner, mlp"):
                c.describe_algorithm("xgboost")
            fake.write_log("bin", "".join(f"loss={i}\n" for i in range(100)))
            thinned = c.training_job_metrics("bin", metric="loss", max_points=10)
            assert len(thinned.Metrics[0].Points) <= 10
    finally:
        plane.store.close()
