"""Batch transform: a transform job's rows/s against an in-process loop, on the user's path.

The data: N CSV rows of 30 features (scikit-learn's breast-cancer rows, repeated with noise),
one object in the store. The model: the demo's scikit-learn pipeline (StandardScaler +
LogisticRegression), served by the project's model server.

1. Baseline: an in-process loop that reads the same file in chunks of the same size as the
   job's mini-batches (MaxPayloadInMB), calls ``predict`` and writes the lines.
2. The transform job through the control plane (``orch server``, process backend, auth on:
   the admin API key), from ``create_transform_job`` to Completed, SplitType Line,
   MultiRecord: with 1 instance, then with 2 (the one file shared as ranges).
3. Resume: the 1-instance job again, its runner killed (SIGKILL) at about 50% of the records;
   the controller relaunches it and it goes on from the ranges done. Reported: total time
   against the uninterrupted run plus the restart (the relaunch to the runner's first range).

    python benchmarks/batch_transform.py [--rows 1000000] [--payload-mb 6] [--skip-resume]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from orchestrator.client import Client

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import control_plane

BUCKET = "s3://bench"


def make_model() -> Any:
    x, y = load_breast_cancer(return_X_y=True)
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(x, y)


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    x, _ = load_breast_cancer(return_X_y=True)
    rng = np.random.default_rng(seed)
    with open(path, "w") as f:
        done = 0
        while done < rows:
            n = min(50_000, rows - done)
            picked = x[rng.integers(0, len(x), n)] * rng.normal(1.0, 0.01, (n, x.shape[1]))
            np.savetxt(f, picked, delimiter=",", fmt="%.6g")
            done += n


def model_tarball(model: Any) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        joblib.dump(model, Path(tmp) / "model.joblib")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(Path(tmp) / "model.joblib", arcname="model.joblib")
    return buf.getvalue()


def in_process(model: Any, data: Path, out: Path, chunk_bytes: int) -> float:
    """Rows/s of read-in-chunks, predict, write-lines in this process (the baseline)."""
    t0 = time.perf_counter()
    rows = 0
    with open(data, "rb") as f, open(out, "w") as w:
        rest = b""
        while True:
            block = f.read(chunk_bytes)
            if not block and not rest:
                break
            block = rest + block
            cut = block.rfind(b"\n") + 1 if block else 0
            if not cut:
                cut = len(block)
            body, rest = block[:cut], block[cut:]
            if not body:
                break
            x = np.loadtxt(io.BytesIO(body), delimiter=",", ndmin=2)
            predictions = model.predict(x)
            w.write("\n".join(str(p) for p in predictions.tolist()))
            w.write("\n")
            rows += len(predictions)
    return rows / (time.perf_counter() - t0)


def job_spec(name: str, instances: int, payload_mb: int) -> dict[str, Any]:
    return {
        "TransformJobName": name,
        "ModelName": "bench-model",
        "BatchStrategy": "MultiRecord",
        "MaxPayloadInMB": payload_mb,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{BUCKET}/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"{BUCKET}/out/{name}",
            "AssembleWith": "Line",
            "Accept": "text/csv",
        },
        "TransformResources": {"InstanceType": "local", "InstanceCount": instances},
    }


def run_job(
    client: Client, spec: dict[str, Any], root: Path, kill_at: float | None
) -> dict[str, Any]:
    name = spec["TransformJobName"]
    t0 = time.perf_counter()
    client.create_transform_job(spec)
    killed_at: float | None = None
    while True:
        d = client.describe_transform_job(name)
        status = str(d.TransformJobStatus)
        if status in ("Completed", "Failed", "Stopped"):
            break
        p = d.Progress
        if (
            kill_at is not None
            and killed_at is None
            and p.BytesTotal
            and p.BytesProcessed >= kill_at * p.BytesTotal
        ):
            killed_at = time.perf_counter() - t0
            _kill_runners(root, name)
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    if status != "Completed":
        raise SystemExit(f"{name}: {status}: {d.FailureReason}")
    return {
        "seconds": elapsed,
        "records": d.Progress.RecordsProcessed,
        "killed_at": killed_at,
        "attempts": max((i.Attempt for i in d.Instances), default=0),
        "instances": d.Instances,
    }


def _kill_runners(root: Path, name: str) -> None:
    for pid_file in (root / "home").glob(f"work/transform-jobs/{name}/**/supervisor.pid"):
        try:
            pid = json.loads(pid_file.read_text())["pid"]
            os.killpg(pid, signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            continue


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--payload-mb", type=int, default=6)
    ap.add_argument("--skip-resume", action="store_true")
    ap.add_argument(
        "--server-concurrency",
        type=int,
        default=1,
        help="the model server's worker threads (the Model's ORCH_SERVING__MAX_CONCURRENCY); "
        "the job sends as many requests at once (GET /execution-parameters)",
    )
    args = ap.parse_args()
    model = make_model()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "rows.csv"
        make_csv(data, args.rows)
        size_mb = data.stat().st_size / 2**20
        base = in_process(model, data, Path(tmp) / "baseline.out", args.payload_mb * 2**20)
        results: list[tuple[str, float, str]] = [("in-process loop", base, "")]
        with control_plane() as (url, key, root), Client(url, api_key=key) as client:
            client.upload_bytes(model_tarball(model), f"{BUCKET}/model/model.tar.gz")
            client.upload_file(data, f"{BUCKET}/in/rows.csv")
            client.create_model(
                ModelName="bench-model",
                PrimaryContainer={
                    "ModelDataUrl": f"{BUCKET}/model/model.tar.gz",
                    "Environment": {"ORCH_SERVING__MAX_CONCURRENCY": str(args.server_concurrency)},
                },
            )
            one = run_job(client, job_spec("bench-1", 1, args.payload_mb), root, None)
            results.append(("transform job, 1 instance", args.rows / one["seconds"], ""))
            two = run_job(client, job_spec("bench-2", 2, args.payload_mb), root, None)
            results.append(
                (
                    "transform job, 2 instances",
                    args.rows / two["seconds"],
                    f"speed-up {one['seconds'] / two['seconds']:.2f}x over 1 instance",
                )
            )
            if not args.skip_resume:
                r = run_job(client, job_spec("bench-resume", 1, args.payload_mb), root, 0.5)
                ratio = r["seconds"] / one["seconds"]
                results.append(
                    (
                        "1 instance, killed at 50%",
                        args.rows / r["seconds"],
                        f"{r['seconds']:.1f} s = {ratio:.2f}x the uninterrupted "
                        f"{one['seconds']:.1f} s (attempts {r['attempts']}, killed at "
                        f"{r['killed_at'] or 0:.1f} s)",
                    )
                )
    print(
        f"\n{args.rows:,} CSV rows x 30 features ({size_mb:.0f} MB), mini-batches of "
        f"{args.payload_mb} MB, model server threads {args.server_concurrency}; process "
        "backend, auth on\n"
    )
    print(f"| {'path':<28} | {'rows/s':>10} | {'vs in-process':>13} | notes")
    print(f"|{'-' * 30}|{'-' * 12}|{'-' * 15}|------")
    for label, rate, note in results:
        print(f"| {label:<28} | {rate:>10,.0f} | {rate / base:>12.2f}x | {note}")


if __name__ == "__main__":
    main()
