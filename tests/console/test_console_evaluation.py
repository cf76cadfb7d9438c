"""The job page's evaluation views, drawn from evaluation.json shapes served by the test
(``page.route``): binary (histogram, slider, ROC and PR), multiclass (heat map, per class) and
regression (residuals, scatter, RMSE). The slider's numbers are checked against the same
counts computed here in Python (the threshold route's rule: positive when score >= t)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from tests.console.conftest import PHONE, Pages, expect, log_in, shot
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.slow
NOW = datetime(2026, 12, 1, tzinfo=UTC).isoformat()


def job(name: str) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "TrainingJobArn": f"arn:aws:sagemaker:local:000000000000:training-job/{name}",
        "TrainingJobStatus": "Completed",
        "SecondaryStatus": "Completed",
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
        "AlgorithmSpecification": {"AlgorithmName": "linear-learner"},
        "HyperParameters": {"epochs": "3"},
        "SecondaryStatusTransitions": [{"Status": "Completed", "StartTime": NOW}],
    }


def binary_case(rng: np.random.Generator) -> tuple[dict[str, Any], dict[str, Any]]:
    labels = rng.integers(0, 2, 300)
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.18), 0, 1)
    edges = np.linspace(0, 1, 51)
    roc, pr = [], []
    for t in np.linspace(1, 0, 41):
        c = counts(labels, scores, float(t))
        roc.append([c["false_positive_rate"], c["recall"]])
        pr.append([c["recall"], c["precision"] or 1.0])
    analysis = {
        "kind": "binary",
        "histogram": {
            "edges": edges.tolist(),
            "negative": np.histogram(scores[labels == 0], edges)[0].tolist(),
            "positive": np.histogram(scores[labels == 1], edges)[0].tolist(),
        },
        "roc": roc,
        "pr": pr,
        "auc": 0.87,
    }
    evaluation = {
        "predictor_type": "binary_classifier",
        "threshold": 0.5,
        "test": {"accuracy": 0.8, "auc": 0.87, "analysis": analysis},
    }
    return evaluation, {"Split": "test", "Labels": labels.tolist(), "Scores": scores.tolist()}


def counts(labels: np.ndarray, scores: np.ndarray, t: float) -> dict[str, Any]:
    pred = scores >= t
    tp = int(np.sum(pred & (labels == 1)))
    fp = int(np.sum(pred & (labels == 0)))
    tn = int(np.sum(~pred & (labels == 0)))
    fn = int(np.sum(~pred & (labels == 1)))
    return {
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / (tp + fn) if tp + fn else 0.0,
        "accuracy": (tp + tn) / len(labels),
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "confusion_matrix": [[tn, fp], [fn, tp]],
    }


def serve(page: Any, name: str, evaluation: dict[str, Any], scores: Any = None) -> None:
    answers: dict[str, Callable[[], Any]] = {
        f"/api/v1/training-jobs/{name}": lambda: job(name),
        f"/api/v1/training-jobs/{name}/metrics": lambda: {"TrainingJobName": name, "Metrics": []},
        f"/api/v1/training-jobs/{name}/evaluation": lambda: evaluation,
        f"/api/v1/training-jobs/{name}/evaluation/scores": lambda: scores,
    }

    def handle(route: Any) -> None:
        path = route.request.url.split("://", 1)[1].split("/", 1)[1].split("?")[0]
        if f"/{path}" == f"/api/v1/training-jobs/{name}/logs":
            route.fulfill(status=200, body="", headers={"X-Next-Offset": "0", "X-More": "false"})
            return
        found = answers.get(f"/{path}")
        if found is None or found() is None:
            route.fulfill(status=404, json={"code": "NotFound", "message": "absent", "field": None})
            return
        route.fulfill(status=200, content_type="application/json", body=json.dumps(found()))

    page.route(f"**/api/v1/training-jobs/{name}**", handle)


def test_the_binary_slider_computes_the_counts_in_the_browser(
    pages: Pages, server: RunningServer
) -> None:
    evaluation, scores = binary_case(np.random.default_rng(7))
    page = pages.new()
    serve(page, "fake-binary", evaluation, scores)
    log_in(page, server.key, "/console/#/jobs/fake-binary")
    slider = page.locator("#threshold")
    slider.wait_for()
    labels, values = np.array(scores["Labels"]), np.array(scores["Scores"])
    for value in ("0.5", "0.31", "0.72", "0", "1"):
        slider.fill(value)
        expect(page.locator("#threshold-value")).to_have_text(f"{float(value):.2f}")
        want = counts(labels, values, float(value))
        for metric in ("precision", "recall", "accuracy", "false_positive_rate"):
            shown = float(page.get_attribute(f"[data-metric={metric}]", "data-value") or "nan")
            assert shown == pytest.approx(want[metric], abs=1e-12), (value, metric)
        (tn, fp), (fn, tp) = want["confusion_matrix"]
        cells = {
            c.get_attribute("data-cell"): int(c.inner_text())
            for c in page.locator("#threshold-confusion td[data-cell]").all()
        }
        assert cells == {"0,0": tn, "0,1": fp, "1,0": fn, "1,1": tp}
    assert page.locator("figure.chart").count() == 3  # histogram, ROC, PR
    assert "0.87" in page.locator("#auc").inner_text()
    slider.fill("0.42")
    # The slider is keyboard reachable: arrows move it a step.
    slider.focus()
    page.keyboard.press("ArrowRight")
    expect(page.locator("#threshold-value")).to_have_text("0.43")
    shot(page, "evaluation-binary", at="#evaluation")

    # At a phone's width nothing spills sideways: charts shrink, tables scroll in their box.
    phone = pages.new(PHONE)
    serve(phone, "fake-binary", evaluation, scores)
    log_in(phone, server.key, "/console/#/jobs/fake-binary")
    phone.locator("#threshold").wait_for()
    phone.locator("figure.chart canvas").first.wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1


def test_multiclass_and_regression_views(pages: Pages, server: RunningServer) -> None:
    multi = {
        "predictor_type": "multiclass_classifier",
        "test": {
            "accuracy": 0.9,
            "analysis": {
                "kind": "multiclass",
                "labels": ["a", "b", "c"],
                "confusion_matrix": [[10, 1, 0], [2, 8, 1], [0, 0, 12]],
                "per_class": [
                    {"label": "a", "precision": 0.83, "recall": 0.91, "f1": 0.87, "support": 11},
                    {"label": "b", "precision": 0.89, "recall": 0.73, "f1": 0.8, "support": 11},
                    {"label": "c", "precision": 0.92, "recall": 1.0, "f1": 0.96, "support": 12},
                ],
            },
        },
    }
    page = pages.new()
    serve(page, "fake-multi", multi)
    log_in(page, server.key, "/console/#/jobs/fake-multi")
    page.locator("table.heatmap").wait_for()
    assert page.locator("table.heatmap td[data-cell='1,0']").inner_text() == "2"
    assert page.locator("#per-class tbody tr").count() == 3
    shot(page, "evaluation-multiclass", at="#evaluation")

    rng = np.random.default_rng(3)
    actual = rng.normal(0, 1, 200)
    predicted = actual + rng.normal(0, 0.3, 200)
    edges = np.linspace(-1, 1, 21)
    regression = {
        "predictor_type": "regressor",
        "test": {
            "rmse": 0.3,
            "analysis": {
                "kind": "regression",
                "residuals": {
                    "edges": edges.tolist(),
                    "counts": np.histogram(actual - predicted, edges)[0].tolist(),
                },
                "scatter": np.column_stack([actual, predicted]).tolist(),
                "rmse": 0.3,
                "baseline_rmse": 1.0,
            },
        },
    }
    page = pages.new()
    serve(page, "fake-reg", regression)
    log_in(page, server.key, "/console/#/jobs/fake-reg")
    page.locator("#rmse").wait_for()
    assert page.locator("#evaluation figure.chart").count() == 2
    scatter = page.locator("figure.chart", has_text="Predicted vs actual")
    scatter.locator("figcaption button").click()
    assert scatter.locator("table tbody tr").count() == 200
    shot(page, "evaluation-regression", at="#evaluation")
