"""How fast the console's pages first draw, measured by the browser (Chromium, playwright).

A control plane (fake backend) holding ``--jobs`` training jobs, and one job whose metric
series has ``--points`` points. Each run opens a fresh page and reads the mark the page sets
when it has drawn (``performance.mark("console:first-render")``: the first table or chart;
``"console:first-chart"``: the first chart), in milliseconds from the navigation's start:

- the job list: the first page of the server-paged list (25 rows of ``--jobs``);
- the job page, its metric as the server answers ``MaxPoints=2000`` (downsampled there);
- the job page, the server ignoring MaxPoints: all ``--points`` points sent to the browser,
  which keeps ~4,000 of them (min/max per bucket) to draw.

For the job page the browser talks to a small proxy in front of the control plane that answers the big job's
``GET /api/v1/training-jobs/NAME/metrics`` itself, from memory, in that route's shape (the fake
backend writes no logs to read metrics from); everything else is passed to the control plane.
Needs Debian's chromium (``.ci/chromium.sh``). Goal: each first draw within 1 s.

    python benchmarks/console_load.py [--jobs 10000] [--points 1000000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from http.cookiejar import CookieJar
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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


def list_latency(url: str, key: str, runs: int = 5) -> float:
    """What the server takes to answer the list page's query, without a browser."""
    query = {"SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 25}
    took = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        for _ in range(runs):
            start = time.perf_counter()
            client.get("/api/v1/training-jobs", params=query).raise_for_status()
            took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took)


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


class _NoCookies(CookieJar):
    def extract_cookies(self, *_: Any) -> None:
        return


class Proxy:
    """HTTP on 127.0.0.1 in front of ``upstream``; ``answers[path]`` is served from memory."""

    SKIP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})

    def __init__(self, upstream: str) -> None:
        self.answers: dict[str, bytes] = {}
        # The browser keeps the cookies: the proxy must not (httpx would send them on).
        self.http = httpx.Client(base_url=upstream, timeout=60, cookies=_NoCookies())
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                return

            def _any(self) -> None:
                path = self.path.split("?", 1)[0]
                if self.command == "GET" and path in proxy.answers:
                    self._send(200, [("Content-Type", "application/json")], proxy.answers[path])
                    return
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size) if size else None
                headers = [(k, v) for k, v in self.headers.items() if k.lower() not in Proxy.SKIP]
                r = proxy.http.request(self.command, self.path, headers=headers, content=body)
                out = [(k, v) for k, v in r.headers.multi_items() if k.lower() not in Proxy.SKIP]
                self._send(r.status_code, out, r.content)

            def _send(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers:
                    if k.lower() != "content-encoding":
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.http.close()


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
    browser: Any, url: str, key: str, runs: int, target: str, mark: str
) -> list[tuple[float, float]]:
    out = []
    for _ in range(runs):
        ctx = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=url)
        page = ctx.new_page()
        page.goto("/console/")
        page.fill("#api-key", key)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#top:not([hidden])")
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
        api_ms = list_latency(url, key)
        print(f"the list API itself (httpx, the page's query, 5 runs): median {api_ms:.0f} ms")
        small = series(2000)
        full = series(args.points)
        print(f"metric answers: 2,000 points = {len(small) / 1e6:.2f} MB, "
              f"{args.points:,} points = {len(full) / 1e6:.1f} MB")  # fmt: skip
        proxy = Proxy(url)
        metrics = f"/api/v1/training-jobs/{BIG}/metrics"
        cases = [
            (f"job list ({args.jobs:,} jobs, page of 25)", None, "/console/#/jobs", "render"),
            ("job page, metric downsampled by the server (2,000 points)", small, f"/console/#/jobs/{BIG}", "chart"),
            (f"job page, metric in full ({args.points:,} points)", full, f"/console/#/jobs/{BIG}", "chart"),
        ]  # fmt: skip
        rows = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for label, body, target, mark in cases:
                    base = url  # the list: straight to the control plane
                    if body is not None:
                        proxy.answers[metrics] = body
                        base = proxy.url
                    print(f"measuring: {label}", flush=True)
                    rows.append((label, measure(browser, base, key, args.runs, target, mark)))
                browser.close()
        finally:
            proxy.close()
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
