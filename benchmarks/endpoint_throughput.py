"""Endpoint requests/s and latency on the demo model (process backend).

Deploys a scikit-learn LogisticRegression (breast-cancer data) as an endpoint and drives it
with a closed-loop asyncio load generator at several concurrencies, both through the control
plane's router (``/endpoints/NAME/invocations``, authenticated) and straight to the replica's
``/invocations``, side by side in one run, so the router's overhead shows as a ratio.

    python benchmarks/endpoint_throughput.py [--seconds 5] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx
import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from orchestrator.client import Client

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import control_plane, percentile


def model_tarball() -> tuple[bytes, bytes]:
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x, y)
    with tempfile.TemporaryDirectory() as tmp:
        joblib.dump(model, Path(tmp) / "model.joblib")
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            tar.add(Path(tmp) / "model.joblib", arcname="model.joblib")
    return buf.getvalue(), json.dumps([x[0].tolist()]).encode()


async def load(
    url: str, headers: dict[str, str], body: bytes, concurrency: int, seconds: float
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    async with httpx.AsyncClient(
        timeout=30, trust_env=False, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post(url, content=body, headers=headers)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return len(latencies) / elapsed, latencies, errors


def bench_config(client: Client, artifact: bytes) -> None:
    """The model ``bench`` (the artifact uploaded) and its one-variant endpoint config
    ``bench``, for an endpoint to be made from."""
    client.upload_bytes(artifact, "s3://orchestrator/bench/model.tar.gz")
    client.create_model(
        ModelName="bench",
        PrimaryContainer={"ModelDataUrl": "s3://orchestrator/bench/model.tar.gz"},
    )
    client.create_endpoint_config(
        EndpointConfigName="bench",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "bench"}],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    artifact, body = model_tarball()
    with control_plane() as (url, key, root), Client(url, key) as client:
        bench_config(client, artifact)
        t0 = time.perf_counter()
        client.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
        client.wait_for_endpoint("bench", poll=0.05)
        ready_s = time.perf_counter() - t0
        port = (
            next((root / "home" / "work" / "endpoints" / "bench").glob("*/port"))
            .read_text()
            .strip()
        )
        targets = {
            "router (control plane, API key)": (
                f"{url}/endpoints/bench/invocations",
                {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            ),
            "replica direct": (
                f"http://127.0.0.1:{port}/invocations",
                {"Content-Type": "application/json"},
            ),
        }
        print(f"endpoint create -> InService: {ready_s:.2f} s")
        print(f"{'path':<34} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
        results: dict[tuple[str, int], float] = {}
        for conc in args.concurrency:
            for label, (target, headers) in targets.items():
                rps, lat, errors = asyncio.run(load(target, headers, body, conc, args.seconds))
                results[(label, conc)] = rps
                print(
                    f"{label:<34} {conc:>4} {rps:8.0f} {percentile(lat, 0.5) * 1e3:8.2f} {percentile(lat, 0.99) * 1e3:8.2f} {errors:>6}"
                )
        for conc in args.concurrency:
            ratio = (
                results[("router (control plane, API key)", conc)]
                / results[("replica direct", conc)]
            )
            print(f"router/direct throughput at concurrency {conc}: {ratio:.2f}x")


if __name__ == "__main__":
    main()
