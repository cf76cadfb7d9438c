"""The console end to end in a real browser, against a real control plane: the job list, a
built-in binary linear-learner job's evaluation and threshold slider, the train wizard to a
Completed job, the deploy wizard, a test request counted on the endpoint page, logout.

One server and one trained job are shared by the module (the tests run in file order)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from orchestrator.client import Estimator
from tests.console.conftest import PHONE, Pages, expect, log_in, shot
from tests.e2e.conftest import RunningServer
from tests.e2e.test_algorithms_process import write_split

pytest.importorskip("tensorflow", reason="the built-in algorithms need orchestrator[tensorflow]")
pytestmark = pytest.mark.slow

JOB = "ll-binary"
TRAIN_TIMEOUT_MS = 150_000


@pytest.fixture(scope="module")
def trained(server: RunningServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    c = server.client()
    train, test, _, _ = write_split(tmp_path_factory.mktemp("data"))
    est = Estimator(
        algorithm="linear-learner",
        hyperparameters={"predictor_type": "binary_classifier", "epochs": 5, "seed": 1},
        client=c,
    )
    job = est.fit(
        {"train": train.as_uri(), "test": test.as_uri()}, job_name=JOB, log_sink=lambda _: None
    )
    assert job is not None and job.TrainingJobStatus == "Completed"
    yield JOB


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The breast cancer set with a header and its label as the last column, "diagnosis"."""
    x, y = load_breast_cancer(return_X_y=True)
    path = tmp_path_factory.mktemp("upload") / "cancer.csv"
    header = ",".join([f"f{i}" for i in range(x.shape[1])] + ["diagnosis"])
    np.savetxt(path, np.column_stack([x, y]), delimiter=",", header=header, comments="", fmt="%g")
    return path


@pytest.fixture(scope="module")
def state() -> dict[str, str]:
    return {}


def api(server: RunningServer, path: str, **params: Any) -> Any:
    r = httpx.get(
        f"{server.url}{path}",
        params=params,
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )
    return r


def test_the_job_list_shows_the_job(pages: Pages, server: RunningServer, trained: str) -> None:
    page = pages.new()
    log_in(page, server.key)
    row = page.locator("table[data-kind=TrainingJobSummaries] tr", has_text=trained)
    row.wait_for()
    assert row.locator("[data-status]").inner_text() == "Completed"
    # Filtered on the server: a name that matches nothing empties the table.
    page.fill("input[name=NameContains]", "no-such-job")
    page.wait_for_selector("#list .empty")
    page.fill("input[name=NameContains]", "ll-")
    row.wait_for()
    shot(page, "jobs")
    phone = pages.new(PHONE)
    log_in(phone, server.key)
    phone.locator("table[data-kind=TrainingJobSummaries]").wait_for()
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"] + 1
    shot(phone, "jobs-phone")


def test_the_threshold_slider_matches_the_threshold_route(
    pages: Pages, server: RunningServer, trained: str
) -> None:
    scores = api(server, f"/api/v1/training-jobs/{trained}/evaluation/scores", Split="test")
    if scores.status_code == 404:
        pytest.skip(
            "this server has no evaluation/scores route yet (the evaluation routes merge later)"
        )
    page = pages.new()
    log_in(page, server.key, f"/console/#/jobs/{trained}")
    slider = page.locator("#threshold")
    slider.wait_for()
    for value in ("0.30", "0.72"):
        slider.fill(value)
        expect(page.locator("#threshold-value")).to_have_text(value)
        want = api(
            server,
            f"/api/v1/training-jobs/{trained}/evaluation/threshold",
            Split="test",
            Threshold=value,
        ).json()
        for metric in ("precision", "recall", "accuracy", "false_positive_rate"):
            shown = float(page.get_attribute(f"[data-metric={metric}]", "data-value") or "nan")
            assert shown == pytest.approx(want[metric], abs=1e-9), (value, metric)
        cells = {
            c.get_attribute("data-cell"): int(c.inner_text())
            for c in page.locator("#threshold-confusion td[data-cell]").all()
        }
        (tn, fp), (fn, tp) = want["confusion_matrix"]
        assert cells == {"0,0": tn, "0,1": fp, "1,0": fn, "1,1": tp}
    # Every chart has its numbers as a table.
    chart = page.locator("figure.chart").first
    chart.locator("figcaption button").click()
    assert chart.locator("table tbody tr").count() > 0
    chart.locator("figcaption button").click()
    shot(page, "job-evaluation", at="#evaluation")


def test_the_job_page_shows_timeline_hyperparameters_metrics_and_log(
    pages: Pages, server: RunningServer, trained: str
) -> None:
    page = pages.new()
    log_in(page, server.key, f"/console/#/jobs/{trained}")
    page.locator("ol.timeline [data-status=Completed]").wait_for()
    assert "epochs" in page.locator("#hyperparameters").inner_text()
    page.locator("#metrics figure.chart").first.wait_for()
    expect(page.locator("#log")).to_have_text(re.compile(r"\S"))
    shot(page, "job")
    shot(page, "job-metrics", at="#metrics")


def test_a_bad_hyperparameter_is_shown_next_to_its_field(
    pages: Pages, server: RunningServer, csv_file: Path
) -> None:
    page = pages.new()
    log_in(page, server.key, "/console/#/train")
    page.set_input_files("#data-upload", str(csv_file))
    page.locator("#preview-table").wait_for()
    page.select_option("#label-column", "diagnosis")
    page.fill("#hp-learning_rate", "-1")
    page.click("#start-training")
    error = page.locator(".field-error[data-error-for=learning_rate]")
    error.wait_for()
    # Right after the field it names.
    assert (
        error.locator("xpath=preceding-sibling::label[1]//*[@id='hp-learning_rate']").count() == 1
    )
    assert "learning_rate" in error.inner_text()


def test_the_train_wizard_runs_a_job_to_completion(
    pages: Pages, server: RunningServer, csv_file: Path, state: dict[str, str]
) -> None:
    page = pages.new()
    log_in(page, server.key, "/console/#/train")
    page.set_input_files("#data-upload", str(csv_file))
    page.locator("#preview-table").wait_for()
    assert page.locator("#preview-table th").count() == 31
    page.select_option("#label-column", "diagnosis")
    assert page.input_value("#problem-type") == "binary_classifier"
    page.fill("#hp-epochs", "3")
    name = page.input_value("#job-name")
    shot(page, "train")
    page.click("#start-training")
    page.wait_for_url(re.compile(rf"#/jobs/{re.escape(name)}$"))
    page.locator("#job-status [data-status=Completed]").wait_for(timeout=TRAIN_TIMEOUT_MS)
    state["job"] = name
    expect(page.locator("#log")).to_contain_text("epoch")  # followed while it ran
    # Another job's metrics overlaid on this one's.
    page.select_option("select[name=compare]", JOB)
    loss = page.locator("#metrics figure.chart", has_text="train:loss").first
    expect(loss.locator(".u-legend")).to_contain_text(JOB)
    expect(loss.locator(".u-legend")).to_contain_text(name)


def test_deploy_invoke_and_see_the_invocation_counted(
    pages: Pages, server: RunningServer, state: dict[str, str]
) -> None:
    job = state.get("job") or JOB
    page = pages.new()
    log_in(page, server.key, f"/console/#/jobs/{job}")
    page.click("a.button:has-text('Deploy')")
    page.fill("#endpoint-name", "console-ep")
    # The API's error lands beside the field it names (ProductionVariants[0].InitialInstanceCount).
    page.fill("#instance-count", "0")
    page.click("#deploy")
    page.locator(".field-error[data-error-for=InitialInstanceCount]").wait_for()
    page.fill("#instance-count", "1")
    page.click("#deploy")
    page.wait_for_url(re.compile(r"#/endpoints/console-ep$"))
    page.locator("#endpoint-status [data-status=InService]").wait_for(timeout=90_000)
    x, _ = load_breast_cancer(return_X_y=True)
    page.fill("#invoke-body", ",".join(f"{v:g}" for v in x[0]))
    page.click("#invoke-form button[type=submit]")
    answer = page.locator("#invoke-answer")
    expect(answer).to_have_attribute("data-status", re.compile(r"\d+"), timeout=30_000)
    assert answer.get_attribute("data-status") == "200", answer.inner_text()
    assert "predicted_label" in answer.inner_text()
    # The page polls the monitoring route (CSP forbids eval, so no wait_for_function).
    expect(page.locator("#invocations-total")).not_to_have_text("0", timeout=30_000)
    shot(page, "endpoint")


def test_the_update_wizard_starts_a_canary(pages: Pages, server: RunningServer) -> None:
    variant = {"VariantName": "AllTraffic", "ModelName": "console-ep", "InitialInstanceCount": 1}
    made = httpx.post(
        f"{server.url}/api/v1/endpoint-configs",
        json={"EndpointConfigName": "console-ep-2", "ProductionVariants": [variant]},
        headers={"Authorization": f"Bearer {server.key}"},
        timeout=30,
    )
    assert made.status_code in {200, 201}, made.text
    page = pages.new()
    log_in(page, server.key, "/console/#/endpoints/console-ep/update")
    page.select_option("#config", "console-ep-2")
    page.select_option("#routing", "CANARY")
    page.fill("#step-size", "50")
    page.fill("#bake", "1")
    shot(page, "update")
    page.click("#update-form button[type=submit]")
    page.wait_for_url(re.compile(r"#/endpoints/console-ep$"))
    ep = api(server, "/api/v1/endpoints/console-ep").json()
    moving = ep.get("Deployment") or ep.get("LastDeployment") or {}
    assert (
        moving.get("TargetEndpointConfigName") == "console-ep-2"
        or ep["EndpointConfigName"] == "console-ep-2"
    )


def test_every_list_page_loads(pages: Pages, server: RunningServer) -> None:
    page = pages.new()
    log_in(page, server.key)
    for section in ("tuning", "transform", "models", "endpoints", "data-sources", "jobs"):
        page.click(f"#top nav a[href='#/{section}']")
        page.locator("#list table, #list .empty").first.wait_for()
    page.select_option("select[name=Sort]", "Name:Ascending")
    page.locator("#list table").wait_for()
    names = page.locator("#list tbody tr td:first-child").all_inner_texts()
    assert names == sorted(names)


def test_logout_returns_to_the_login_form(pages: Pages, server: RunningServer) -> None:
    page = pages.new()
    log_in(page, server.key)
    page.click("#logout")
    page.wait_for_selector("#login-form")
    page.goto("/console/#/jobs")
    page.wait_for_selector("#login-form")
