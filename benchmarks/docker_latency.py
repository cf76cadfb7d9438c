"""The Docker backend: submit -> container running latency, and endpoint requests/s.

1. Latency: 20 script-mode jobs, one after another, each printing ``time.time()`` as its first
   line; latency = that time - the moment before ``POST /training-jobs``. Beside it, the floor:
   a bare ``docker run --rm IMAGE python -c 'print(time.time())'`` of the same image, measured
   the same way. Goal: p50 <= 1.5 s.
2. Throughput: the demo model (LogisticRegression) as an endpoint on the Docker backend and on
   the process backend, driven through the control plane's router with the closed-loop load of
   ``endpoint_throughput.py``.

    python benchmarks/docker_latency.py [--jobs 20] [--seconds 5] [--concurrency 1 8 32]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

import docker

from orchestrator.client import Client
from orchestrator.settings import DockerSettings

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import control_plane, percentile
from endpoint_throughput import load, model_tarball

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.e2e.conftest import source_tarball

FIRST_LINE = "import time; print('t=%.6f' % time.time(), flush=True)\n"


def stamp(text: str) -> float | None:
    for line in text.splitlines():
        if line.startswith("t="):
            return float(line[2:])
    return None


def bare_docker_run(image: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.time()
        printed = subprocess.run(
            ["docker", "run", "--rm", image, "python", "-c", FIRST_LINE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        t = stamp(printed)
        assert t is not None, printed
        out.append(t - t0)
    return out


def job_latencies(n: int) -> list[float]:
    out = []
    with (
        control_plane(ORCH_BACKEND="docker", ORCH_CONTROLLER__RESYNC_SECONDS="1") as (url, key, _),
        Client(url, key) as c,
    ):
        src = "s3://orchestrator/bench/source.tar.gz"
        c.upload_bytes(source_tarball({"train.py": FIRST_LINE}), src)
        for i in range(n):
            name = f"latency-{i}"
            spec = {
                "TrainingJobName": name,
                "AlgorithmSpecification": {"TrainingInputMode": "File"},
                "HyperParameters": {
                    "sagemaker_program": "train.py",
                    "sagemaker_submit_directory": src,
                },
            }
            t0 = time.time()
            c.create_training_job(spec)
            job = c.wait_for_training_job(name, timeout=60, poll=0.05)
            assert job.TrainingJobStatus == "Completed", job.FailureReason
            t = stamp(c.training_job_logs(name).text)
            assert t is not None
            out.append(t - t0)
    return out


def endpoint_rps(backend: str, seconds: float, concurrency: list[int]) -> dict[int, float]:
    artifact, body = model_tarball()
    rates: dict[int, float] = {}
    with control_plane(ORCH_BACKEND=backend) as (url, key, _), Client(url, key) as c:
        c.upload_bytes(artifact, "s3://orchestrator/bench/model.tar.gz")
        c.create_model(
            ModelName="bench",
            PrimaryContainer={"ModelDataUrl": "s3://orchestrator/bench/model.tar.gz"},
        )
        c.create_endpoint_config(
            EndpointConfigName="bench",
            ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "bench"}],
        )
        c.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
        c.wait_for_endpoint("bench", poll=0.05, timeout=120)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        target = f"{url}/endpoints/bench/invocations"
        for conc in concurrency:
            rps, _, errors = asyncio.run(load(target, headers, body, conc, seconds))
            assert errors == 0
            rates[conc] = rps
        c.delete_endpoint("bench")
        c.wait_for_endpoint_deleted("bench", timeout=60)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    image = DockerSettings().training_image
    docker.from_env().images.get(image)  # fails early, naming the image, if it is missing

    bare = bare_docker_run(image, args.jobs)
    jobs = job_latencies(args.jobs)
    print(f"submit -> first line of the user's code, {args.jobs} runs each ({image})")
    print(f"{'path':<44} {'p50 s':>7} {'p99 s':>7} {'min s':>7}")
    for label, values in (
        ("docker run --rm (bare, CLI)", bare),
        ("training job on the Docker backend", jobs),
    ):
        print(
            f"{label:<44} {percentile(values, 0.5):7.2f} {percentile(values, 0.99):7.2f} "
            f"{min(values):7.2f}"
        )
    goal = "met" if percentile(jobs, 0.5) <= 1.5 else "NOT met"
    print(f"goal p50 <= 1.5 s: {goal}\n")

    print(f"endpoint requests/s through the router ({args.seconds:.0f} s per point)")
    process = endpoint_rps("process", args.seconds, args.concurrency)
    dock = endpoint_rps("docker", args.seconds, args.concurrency)
    print(f"{'concurrency':>11} {'process':>9} {'docker':>9} {'docker/process':>15}")
    for conc in args.concurrency:
        print(
            f"{conc:>11} {process[conc]:9.0f} {dock[conc]:9.0f} {dock[conc] / process[conc]:15.2f}"
        )


if __name__ == "__main__":
    main()
