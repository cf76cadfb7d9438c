"""Search over many training jobs: p50/p95 of typical queries on SQLite and PostgreSQL.

Fills a fresh store with N training jobs (10 final metrics and 4 hyperparameters each),
inserted in bulk into the store's own tables (``resources`` and the index tables, the rows
``search_sql`` writes, from the same ``properties_of``; not one create per job, which would take
minutes), then times each query twice: through ``StateStore.search`` (compile + one SQL query + the
page's records decoded), and as a user calls it, ``POST /api/v1/search`` with an API key on a
control plane served over HTTP in-process over the same database (``Client.search``: auth,
the checks, the query, 100 records rendered in DescribeTrainingJob's shape, JSON both ways). PostgreSQL: ORCH_TEST_POSTGRES_URL's server (a database is made and
dropped), skipped when none answers.

    python benchmarks/tuning_search.py [--jobs 100000] [--runs 50] [--backends sqlite,postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from orchestrator.client import Client
from orchestrator.resources.search import SearchRequest, compile_search, properties_of
from orchestrator.store import StateStore
from orchestrator.store.tables import SEARCH_TABLES, resources
from orchestrator.testing import local_control_plane

METRICS = [f"validation:m{i}" for i in range(9)] + ["validation:accuracy"]
QUERIES: dict[str, dict[str, Any]] = {
    "metric filter + metric sort": {
        "SearchExpression": {"Filters": [
            {"Name": "Metrics.validation:accuracy", "Operator": "GreaterThan", "Value": "0.95"}]},
        "SortBy": "Metrics.validation:accuracy", "SortOrder": "Descending",
    },
    "metric filter + other metric sort": {
        "SearchExpression": {"Filters": [
            {"Name": "Metrics.validation:accuracy", "Operator": "GreaterThan", "Value": "0.95"}]},
        "SortBy": "Metrics.validation:m3", "SortOrder": "Ascending",
    },
    "metric + hyperparameter + status": {
        "SearchExpression": {"Filters": [
            {"Name": "Metrics.validation:accuracy", "Operator": "GreaterThanOrEqualTo", "Value": "0.9"},
            {"Name": "HyperParameters.optimizer", "Value": "adam"},
            {"Name": "TrainingJobStatus", "Operator": "In", "Value": "Completed,Stopped"}]},
        "SortBy": "CreationTime",
    },
    "tuning job's trials by objective": {
        "SearchExpression": {"Filters": [{"Name": "TuningJobName", "Value": "tune-7"}]},
        "SortBy": "Metrics.validation:accuracy", "SortOrder": "Descending",
    },
}  # fmt: skip


def fill(store: StateStore, n: int, seed: int = 0) -> float:
    rnd = random.Random(seed)
    start = time.perf_counter()
    batch = 5000
    for lo in range(0, n, batch):
        rows: list[dict[str, Any]] = []
        index: dict[str, list[dict[str, Any]]] = {f: [] for f in SEARCH_TABLES}
        for i in range(lo, min(n, lo + batch)):
            name = f"job-{i:06d}"
            spec = {
                "TrainingJobName": name,
                "AlgorithmSpecification": {"TrainingImage": "linear-learner", "TrainingInputMode": "File"},
                "HyperParameters": {"learning_rate": str(10 ** rnd.uniform(-4, -1)),
                                    "optimizer": rnd.choice(["adam", "sgd"]),
                                    "num_layers": str(rnd.randint(1, 4)), "epochs": "10"},
                "Tags": [{"Key": "orchestrator:tuning-job", "Value": f"tune-{i // 100}"}],
            }  # fmt: skip
            status = {
                "TrainingJobStatus": "Completed", "SecondaryStatus": "Completed",
                "FinalMetricDataList": [{"MetricName": m, "Value": rnd.random(),
                                         "Timestamp": "2024-01-01T00:00:00Z"} for m in METRICS],
            }  # fmt: skip
            phase = rnd.choice(["Completed"] * 8 + ["Failed", "Stopped"])
            created = 1_700_000_000 + i
            rows.append({
                "kind": "TrainingJob", "name": name, "uid": str(uuid.uuid4()),
                "spec": json.dumps(spec), "spec_hash": "-", "status": json.dumps(status),
                "phase": phase, "active": False, "stop_requested": False,
                "delete_requested": False, "created_at": created, "updated_at": created,
                "version": 1,
            })  # fmt: skip
            props = properties_of(
                "TrainingJob", name, spec, status, phase=phase, created=created, updated=created
            )
            assert props is not None
            for family in SEARCH_TABLES:
                index[family] += [
                    {"kind": "TrainingJob", "name": name, "key": k, "text": t, "num": v}
                    for k, (t, v) in props.family(family).items()  # type: ignore[arg-type]
                ]
        with store.engine.begin() as conn:
            conn.execute(resources.insert(), rows)
            for family, items in index.items():
                if items:
                    conn.execute(SEARCH_TABLES[family].insert(), items)
    with store.engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - start


Row = tuple[str, float, float, float, float, int]


def _quantiles(times: list[float]) -> tuple[float, float]:
    times = times[3:]  # warm-up
    return statistics.median(times), statistics.quantiles(times, n=20)[-1]


def time_queries(store: StateStore, client: Client, runs: int) -> list[Row]:
    """Per query: the store's p50/p95, the REST API's p50/p95 (ms), and the page's size."""
    out = []
    for label, body in QUERIES.items():
        req = SearchRequest(Resource="TrainingJob", MaxResults=100, **body)
        inner, outer, hits = [], [], 0
        for _ in range(runs + 3):
            t0 = time.perf_counter()
            page, _ = store.search(compile_search(req, ["TrainingJob"]))
            inner.append((time.perf_counter() - t0) * 1000)
            hits = len(page)
            t0 = time.perf_counter()
            answer = client.search(
                body["SearchExpression"],
                sort_by=body.get("SortBy"),
                sort_order=body.get("SortOrder"),
                max_results=100,
            )
            outer.append((time.perf_counter() - t0) * 1000)
            assert len(answer["Results"]) == hits, (label, len(answer["Results"]), hits)
        out.append((label, *_quantiles(inner), *_quantiles(outer), hits))
    return out


def _postgres() -> tuple[str, Any] | None:
    url = os.environ.get("ORCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    try:
        import psycopg
    except ImportError:
        return None
    parts = urlsplit(url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = f"orch_bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError:
        return None

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return urlunsplit(parts._replace(path=f"/{name}")), drop


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--backends", default="sqlite,postgres")
    args = ap.parse_args(argv)
    print(
        f"Search over {args.jobs} training jobs, {len(METRICS)} metrics each; {args.runs} runs, MaxResults 100"
    )
    print(
        f"{'backend':9} {'query':36} {'store p50':>9} {'p95':>7} {'REST p50':>9} {'p95':>7} "
        f"{'hits':>5}"
    )
    for backend in args.backends.split(","):
        drop = None
        with tempfile.TemporaryDirectory() as tmp:
            if backend == "sqlite":
                url = f"sqlite:///{tmp}/state.db"
            else:
                pg = _postgres()
                if pg is None:
                    print(f"{backend:9} skipped: no PostgreSQL server answers")
                    continue
                url, drop = pg
            store = StateStore(url)
            try:
                seconds = fill(store, args.jobs)
                print(f"{backend:9} {'(bulk insert, ms)':36} {seconds * 1000:9.0f}")
                with local_control_plane(Path(tmp) / "plane", database_url=url) as lcp:
                    for label, p50, p95, r50, r95, hits in time_queries(
                        store, lcp.client, args.runs
                    ):
                        print(
                            f"{backend:9} {label:36} {p50:9.1f} {p95:7.1f} {r50:9.1f} {r95:7.1f} "
                            f"{hits:5d}"
                        )
            finally:
                store.close()
                if drop is not None:
                    drop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
