"""The DataSource snapshot step against its peer, PostgreSQL's own ``COPY ... TO STDOUT``.

A table of ROWS rows x 30 float8 columns is made once in a scratch database of the local
PostgreSQL (127.0.0.1:5432, user postgres; ``--host``, ``--port``, ``--user`` change it) and
dropped at the end. The snapshot step (``snapshot.main`` in a subprocess, as a job runs it)
reads ``SELECT * FROM wide`` with statistics off and on; the peer copies the same query as
text into a file through psycopg's ``cursor.copy``. Each row: rows/s, MB/s of the output
written, seconds, the peak RSS of the process that did the work, and rows/s against COPY's.
The issue's goal is a snapshot at 0.5x COPY's rows/s or better.

    PYTHONPATH=$PWD python benchmarks/datasource_snapshot.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg

COLUMNS = 30
ROOT = Path(__file__).resolve().parent.parent

CHILD = textwrap.dedent(
    """
    import resource, subprocess, sys, time
    started = time.perf_counter()
    rc = subprocess.run([sys.executable, "-m", "orchestrator.datasources.snapshot"],
                        stdout=subprocess.DEVNULL).returncode
    elapsed = time.perf_counter() - started
    print(rc, elapsed, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)

COPY_CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    import psycopg
    args = json.loads(sys.argv[1])
    started = time.perf_counter()
    with psycopg.connect(**args["conn"]) as conn, conn.cursor() as cur, open(args["out"], "wb") as f:
        with cur.copy("COPY (" + args["query"] + ") TO STDOUT") as copy:
            for chunk in copy:
                f.write(chunk)
    elapsed = time.perf_counter() - started
    print(0, elapsed, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
)


def _measure(code: str, env: dict[str, str], *args: str) -> tuple[float, float]:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    rc, seconds, peak_kb = done.stdout.split()
    if rc != "0":
        raise SystemExit(f"the run failed ({rc}): {done.stderr[-2000:]}")
    return float(seconds), int(peak_kb) / 1024


def _snapshot(
    work: Path, conn: dict[str, Any], query: str, statistics: bool
) -> tuple[float, float, int]:
    root = work / f"ml-{statistics}"
    (root / "input" / "config").mkdir(parents=True)
    (root / "input" / "data" / "credentials").mkdir(parents=True)
    hp = {
        "source": "sql",
        "data_source": "bench",
        "version": "1",
        "engine": "postgresql",
        "host": conn["host"],
        "port": str(conn["port"]),
        "database": conn["dbname"],
        "connect_timeout": "10",
        "query": query,
        "compute_statistics": "true" if statistics else "false",
    }
    (root / "input" / "config" / "hyperparameters.json").write_text(json.dumps(hp))
    (root / "input" / "data" / "credentials" / "secret.json").write_text(
        json.dumps({"Username": conn["user"], "Password": ""})
    )
    env = {**os.environ, "ORCH_ML_ROOT": str(root), "PYTHONPATH": str(ROOT)}
    seconds, peak = _measure(CHILD, env)
    size = sum(p.stat().st_size for p in (root / "output" / "dataset").glob("part-*.parquet"))
    return seconds, peak, size


def _through_control_plane(conn: dict[str, Any], query: str) -> tuple[float, int]:
    """The user's path: ``orch server`` (process backend, default settings, its admin key)
    started here, the credentials put in its store, ``create_data_source`` to COMPLETED (the
    snapshot job's launch, the snapshot, the upload of its parts and the status) timed from
    the create."""
    from _server import control_plane

    from orchestrator.client import Client

    with control_plane() as (url, key, _root), Client(url, key) as c:
        secret = json.dumps({"Username": conn["user"], "Password": ""}).encode()
        c.upload_bytes(secret, "s3://orchestrator/secrets/bench.json")
        spec = {
            "DataSourceName": "bench",
            "ComputeStatistics": True,
            "DataSpec": {
                "Sql": {
                    "DatabaseInformation": {
                        "Engine": "postgresql",
                        "Host": conn["host"],
                        "Port": conn["port"],
                        "DatabaseName": conn["dbname"],
                    },
                    "SelectSqlQuery": query,
                    "DatabaseCredentials": {"SecretUri": "s3://orchestrator/secrets/bench.json"},
                }
            },
        }
        started = time.perf_counter()
        c.create_data_source(spec)
        ds = c.wait_for_data_source("bench", poll=0.2, timeout=1800)
        seconds = time.perf_counter() - started
        if ds.Status != "COMPLETED":
            raise SystemExit(f"the data source failed: {ds.Versions[-1].FailureReason}")
        job = c.describe_training_job(ds.Versions[-1].SnapshotJobName)
        print("the snapshot job's steps through the API:")
        for t in job.SecondaryStatusTransitions:
            end = t.EndTime or t.StartTime
            print(
                f"  {t.Status:12} {(end - t.StartTime).total_seconds():6.2f} s  {t.StatusMessage}"
            )
        return seconds, ds.Versions[-1].DataSizeInBytes or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5432)
    parser.add_argument("--user", default="postgres")
    args = parser.parse_args()
    admin_args: dict[str, Any] = {"host": args.host, "port": args.port, "user": args.user}
    scratch = f"orch_bench_{secrets.token_hex(4)}"
    with psycopg.connect(**admin_args, dbname="postgres", autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{scratch}"')  # type: ignore[arg-type]
    conn = {**admin_args, "dbname": scratch}
    try:
        columns = ", ".join(f"random() * {i + 1} AS c{i}" for i in range(COLUMNS))
        started = time.perf_counter()
        with psycopg.connect(**conn, autocommit=True) as c:
            c.execute(  # type: ignore[call-overload]
                f"CREATE TABLE wide AS SELECT {columns} FROM generate_series(1, {args.rows})"
            )
            c.execute("VACUUM ANALYZE wide")
        print(
            f"made {args.rows:,} rows x {COLUMNS} float8 in {time.perf_counter() - started:.1f} s"
        )
        query = "SELECT * FROM wide"
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            # a first read warms the table into shared buffers for every run alike
            out = work / "copy.txt"
            copy_args = json.dumps({"conn": conn, "query": query, "out": str(out)})
            _measure(COPY_CHILD, dict(os.environ), copy_args)
            copy_s, copy_peak = _measure(COPY_CHILD, dict(os.environ), copy_args)
            copy_size = out.stat().st_size
            out.unlink()
            results = [("COPY (query) TO STDOUT, text", copy_s, copy_peak, copy_size)]
            for statistics in (False, True):
                seconds, peak, size = _snapshot(work, conn, query, statistics)
                label = f"snapshot, compute_statistics={str(statistics).lower()}"
                results.append((label, seconds, peak, size))
            seconds, size = _through_control_plane(conn, query)
            results.append(("create_data_source to COMPLETED (the API)", seconds, 0.0, size))
    finally:
        with psycopg.connect(**admin_args, dbname="postgres", autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')  # type: ignore[arg-type]
    copy_rate = args.rows / copy_s
    print()
    print(f"{'':42} {'rows/s':>10} {'MB/s':>8} {'seconds':>8} {'peak RSS MB':>12} {'vs COPY':>8}")
    for label, seconds, peak, size in results:
        rate = args.rows / seconds
        print(
            f"{label:42} {rate:>10,.0f} {size / 1e6 / seconds:>8.1f} {seconds:>8.2f} "
            f"{(f'{peak:.0f}' if peak else '-'):>12} {rate / copy_rate:>7.2f}x"
        )
    print("\nMB/s: of the output written (COPY's text file, the snapshot's Parquet parts).")
    print("The API row: orch server on the process backend, statistics on, from the create to")
    print("COMPLETED (the job's launch and upload included; its peak RSS is the job's, not here).")


if __name__ == "__main__":
    main()
