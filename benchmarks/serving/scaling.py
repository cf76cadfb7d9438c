"""Autoscaling and scale-from-zero on the process backend, with the demo model.

1. Load step: an open-loop load of ``--base`` requests/s, then five times that. The variant
   tracks ``SageMakerVariantInvocationsPerInstance`` (target: ``--target`` per instance per
   minute). Measured: seconds from the step until a second replica serves (it is in the route:
   ``CurrentInstanceCount`` >= 2), the replica's own start time (ModelSetupTime, from the
   metrics API), and whether the desired count ever moved back and forth while the load held
   (flapping). Goal: first extra replica serving <= 8 s + its start time; no flapping.
2. Cold start: a variant with ``MinInstanceCount: 0`` idles until it has no replica, then one
   request is timed (held by the router while a replica starts). ``--cold-runs`` times.
   Goal: p99 <= 3 s.

    python benchmarks/serving/scaling.py [--base 10] [--hold 30] [--cold-runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx
import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

from orchestrator.client import Client

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _server import control_plane, percentile

ROW = None  # set in main: one test row as JSON


def upload_model(c: Client, name: str) -> list[float]:
    x, y = load_breast_cancer(return_X_y=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.joblib"
        joblib.dump(LogisticRegression(max_iter=5000).fit(x, y), path)
        c.upload_file(path, f"s3://orchestrator/{name}/model.joblib")
    c.create_model(
        ModelName=name,
        PrimaryContainer={"ModelDataUrl": f"s3://orchestrator/{name}/model.joblib"},
    )
    return [float(v) for v in x[0]]


async def open_loop(
    url: str, body: bytes, rate: float, stop: asyncio.Event, out: list[int]
) -> None:
    """``rate`` requests/s whatever the answers' latency (an open loop, like real traffic)."""
    async with httpx.AsyncClient(
        timeout=30, trust_env=False, limits=httpx.Limits(max_connections=200)
    ) as http:
        tasks: set[asyncio.Task[None]] = set()

        async def one() -> None:
            try:
                r = await http.post(url, content=body, headers={"Content-Type": "application/json"})
                out.append(r.status_code)
            except httpx.HTTPError:
                out.append(0)

        start = time.monotonic()
        n = 0
        while not stop.is_set():
            due = start + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)


async def load_step(
    c: Client, url: str, base: float, target: float, hold: float
) -> dict[str, float]:
    import json

    name = "scale-step"
    row = upload_model(c, name)
    c.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": name,
                "ManagedInstanceScaling": {
                    "MinInstanceCount": 1,
                    "MaxInstanceCount": 4,
                    "TargetTracking": {
                        "TargetValue": target,
                        "ScaleOutCooldown": 30,
                        "ScaleInCooldown": 300,
                    },
                },
            }
        ],
    )
    c.create_endpoint(EndpointName=name, EndpointConfigName=name, AuthMode="None")
    c.wait_for_endpoint(name, timeout=120)
    body = json.dumps([row]).encode()
    invoke = f"{url}/endpoints/{name}/invocations"
    statuses: list[int] = []
    stop_base = asyncio.Event()
    base_task = asyncio.create_task(open_loop(invoke, body, base, stop_base, statuses))
    await asyncio.sleep(15)  # a full metric window at the base rate: one replica is enough
    before = c.describe_endpoint(name).ProductionVariants[0]
    stepped = time.monotonic()
    stop_step = asyncio.Event()
    step_task = asyncio.create_task(open_loop(invoke, body, 4 * base, stop_step, statuses))
    first_extra = float("nan")
    history: list[int] = []
    while time.monotonic() - stepped < hold:
        v = (await asyncio.to_thread(c.describe_endpoint, name)).ProductionVariants[0]
        history.append(v.DesiredInstanceCount)
        if v.CurrentInstanceCount >= 2 and first_extra != first_extra:
            first_extra = time.monotonic() - stepped
        await asyncio.sleep(0.25)
    stop_step.set()
    stop_base.set()
    await asyncio.gather(base_task, step_task)
    points = c.endpoint_metrics(
        name, "ModelSetupTime", period=60, statistics=("Maximum",)
    ).Datapoints
    setup = max((p.Maximum or 0.0 for p in points), default=0.0) / 1e6
    # The desired count's distinct values in order; a reversal (up then down, or down then
    # up) while the load holds is flapping.
    levels = [n for i, n in enumerate(history) if i == 0 or history[i - 1] != n]
    changes = len(levels) - 1
    flaps = sum(
        1
        for a, b, c2 in zip(levels, levels[1:], levels[2:], strict=False)
        if (b - a) * (c2 - b) < 0
    )
    return {
        "instances_before": before.CurrentInstanceCount,
        "first_extra_s": first_extra,
        "setup_s": setup,
        "final_desired": history[-1] if history else 0,
        "changes": changes,
        "flaps": flaps,
        "failed": sum(1 for s in statuses if s != 200),
        "requests": len(statuses),
    }


def cold_starts(c: Client, url: str, runs: int) -> list[float]:
    import json

    name = "scale-zero"
    row = upload_model(c, name)
    c.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": name,
                "ManagedInstanceScaling": {
                    "MinInstanceCount": 0,
                    "MaxInstanceCount": 1,
                    "ScaleToZeroAfterIdleSeconds": 10,
                },
            }
        ],
    )
    c.create_endpoint(EndpointName=name, EndpointConfigName=name, AuthMode="None")
    c.wait_for_endpoint(name, timeout=120)
    body = json.dumps([row]).encode()
    times: list[float] = []
    with httpx.Client(timeout=60, trust_env=False) as http:
        for _ in range(runs):
            deadline = time.monotonic() + 60
            while True:
                v = c.describe_endpoint(name).ProductionVariants[0]
                if v.DesiredInstanceCount == 0 and v.CurrentInstanceCount == 0:
                    break
                if time.monotonic() > deadline:
                    raise SystemExit("the variant never scaled to zero")
                time.sleep(0.25)
            time.sleep(1.0)  # let the last replica finish exiting
            started = time.perf_counter()
            r = http.post(
                f"{url}/endpoints/{name}/invocations",
                content=body,
                headers={"Content-Type": "application/json"},
            )
            took = time.perf_counter() - started
            if r.status_code != 200:
                raise SystemExit(f"cold request answered {r.status_code}: {r.text}")
            times.append(took)
            print(f"  cold start {len(times)}/{runs}: {took:.2f} s", flush=True)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--base", type=float, default=10.0, help="base requests/s")
    parser.add_argument(
        "--target", type=float, default=1200.0, help="invocations per instance per minute"
    )
    parser.add_argument("--hold", type=float, default=30.0, help="seconds at 5x load")
    parser.add_argument("--cold-runs", type=int, default=10)
    args = parser.parse_args()
    with control_plane() as (url, key, _root):
        c = Client(url, key)
        print(
            f"load step: {args.base:g} -> {5 * args.base:g} requests/s, target "
            f"{args.target:g}/instance/minute, held {args.hold:g} s",
            flush=True,
        )
        step = asyncio.run(load_step(c, url, args.base, args.target, args.hold))
        print(f"cold starts from zero: {args.cold_runs} runs", flush=True)
        cold = cold_starts(c, url, args.cold_runs)
        c.close()
    budget = 8.0 + step["setup_s"]
    print()
    print("| measure | value | goal | met |")
    print("|---|---|---|---|")
    print(
        f"| first extra replica serving after the 5x step | {step['first_extra_s']:.2f} s "
        f"(its start: {step['setup_s']:.2f} s) | <= 8 s + start = {budget:.2f} s | "
        f"{'met' if step['first_extra_s'] <= budget else 'NOT met'} |"
    )
    print(
        f"| desired count while 5x load held | {int(step['changes'])} changes, "
        f"{int(step['flaps'])} reversals, ends at {int(step['final_desired'])} | no flapping | "
        f"{'met' if step['flaps'] == 0 else 'NOT met'} |"
    )
    print(
        f"| failed requests during the step | {int(step['failed'])} of "
        f"{int(step['requests'])} | 0 | {'met' if step['failed'] == 0 else 'NOT met'} |"
    )
    p50, p99 = percentile(cold, 0.5), percentile(cold, 0.99)
    print(
        f"| cold start from zero ({len(cold)} runs) | p50 {p50:.2f} s, p99 {p99:.2f} s, "
        f"max {max(cold):.2f} s | p99 <= 3 s | {'met' if p99 <= 3.0 else 'NOT met'} |"
    )


if __name__ == "__main__":
    main()
