"""How fast the console's pages first draw, measured by the browser (Chromium, playwright).

A control plane (fake backend) holding ``--jobs`` training jobs, and one job whose metric
series has ``--points`` points. Each run opens a fresh page and reads the mark the page sets
when it has drawn (``performance.mark("console:first-render")``: the first table or chart;
``"console:first-chart"``: the first chart), in milliseconds from the navigation's start:

- the job list: the first page of the server-paged list (25 rows of ``--jobs``);
- the job page, its metric as the server answers ``MaxPoints=2000`` (downsampled there);
- the job page, the server ignoring MaxPoints: all ``--points`` points sent to the browser,
  which keeps ~4,000 of them (min/max per bucket) to draw.

The metric answers are served by the benchmark (``page.route``), in the shape of
``GET /api/v1/training-jobs/NAME/metrics``: the fake backend writes no logs to read them from.
Needs Debian's chromium (``.ci/chromium.sh``). Goal: each first draw within 1 s.

    python benchmarks/console_load.py [--jobs 10000] [--points 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _server import control_plane

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
BIG = "big-metrics"
GOAL_MS = 1000.0


def create_jobs(url: str, key: str, n: int) -> float:
    def one(i: int) -> None:
        spec = {
            "TrainingJobName": f"job-{i:05d}" if i else BIG,
            "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        }
        r = client.post("/api/v1/training-jobs", json=spec)
        if r.status_code not in {200, 201}:
            raise SystemExit(f"create {spec['TrainingJobName']}: {r.status_code} {r.text}")

    start = time.perf_counter()
    with (
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        list(pool.map(one, range(n)))
    return time.perf_counter() - start


def series(points: int) -> bytes:
    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    step = timedelta(milliseconds=10)
    pts = [
        {"Timestamp": (t0 + i * step).isoformat(), "Value": 1.0 / (1 + i * 1e-4) + (i % 7) * 1e-3,
         "Step": i, "Epoch": i // 1000}
        for i in range(points)
    ]  # fmt: skip
    doc = {"TrainingJobName": BIG, "Metrics": [{"MetricName": "train:loss", "Points": pts}]}
    return json.dumps(doc, separators=(",", ":")).encode()


def first_mark(page: Any, url: str, mark: str) -> tuple[float, float]:
    page.goto(url)
    page.wait_for_selector(
        "figure.chart" if mark.endswith("chart") else "#list table", timeout=60_000
    )
    value = page.evaluate(
        f"performance.getEntriesByName('console:first-{mark}').map(e => e.startTime)[0] ?? null"
    )
    if value is None:
        raise SystemExit(f"{url}: the page set no console:first-{mark} mark")
    # When the answer it draws from had arrived: the list's, or the metrics'.
    source = "/metrics" if mark == "chart" else "/training-jobs?"
    arrived = page.evaluate(
        "s => Math.max(0, ...performance.getEntriesByType('resource')"
        ".filter(e => e.name.includes(s)).map(e => e.responseEnd))",
        source,
    )
    return float(value), float(arrived)


def measure(
    browser: Any, url: str, key: str, runs: int, metrics: bytes | None, mark: str
) -> list[tuple[float, float]]:
    out = []
    for _ in range(runs):
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
        if metrics is not None:
            ctx.route(
                f"**/api/v1/training-jobs/{BIG}/metrics**",
                lambda route: route.fulfill(
                    status=200, content_type="application/json", body=metrics
                ),
            )
        page = ctx.new_page()
        page.goto("/console/")
        page.fill("#api-key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#top:not([hidden])")
        target = f"/console/#/jobs/{BIG}" if metrics is not None else "/console/#/jobs"
        # A fresh navigation, the session cookie already set: the mark counts from its start.
        fresh = ctx.new_page()
        out.append(first_mark(fresh, target, mark))
        ctx.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    limits = {
        "ORCH_RATE_LIMITS__API_REQUESTS_PER_SECOND": "100000",
        "ORCH_RATE_LIMITS__API_BURST": "100000",
    }
    with control_plane(ORCH_BACKEND="fake", **limits) as (url, key, _root):
        took = create_jobs(url, key, args.jobs)
        print(f"{args.jobs} training jobs created in {took:.1f} s")
        small = series(2000)
        full = series(args.points)
        print(f"metric answers: 2,000 points = {len(small) / 1e6:.2f} MB, "
              f"{args.points:,} points = {len(full) / 1e6:.1f} MB")  # fmt: skip
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            cases = [
                (f"job list ({args.jobs:,} jobs, page of 25)", None, "render"),
                ("job page, metric downsampled by the server (2,000 points)", small, "chart"),
                (f"job page, metric in full ({args.points:,} points)", full, "chart"),
            ]
            rows = []
            for label, body, mark in cases:
                ms = measure(browser, url, key, args.runs, body, mark)
                rows.append((label, ms))
            browser.close()
    print(
        f"\nfirst draw (ms from navigation start), {args.runs} runs each; goal <= {GOAL_MS:.0f} ms"
    )
    print("data: when the answer it draws from had arrived; draw: from then to the mark (medians)")
    print(f"{'page':<62} {'median':>7} {'min':>7} {'max':>7} {'data':>7} {'draw':>7}  goal")
    for label, ms in rows:
        drawn = [d for d, _ in ms]
        med = statistics.median(drawn)
        data = statistics.median(a for _, a in ms)
        draw = statistics.median(d - a for d, a in ms)
        print(f"{label:<62} {med:>7.0f} {min(drawn):>7.0f} {max(drawn):>7.0f} {data:>7.0f} {draw:>7.0f}  "
              f"{'met' if med <= GOAL_MS else 'MISSED'}")  # fmt: skip


if __name__ == "__main__":
    main()
