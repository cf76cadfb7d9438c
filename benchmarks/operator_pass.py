"""The operator's pass over a namespace in steady state, against the Kubernetes API emulator.

For each size N: N TrainingJobs (one in five Completed, the others InProgress with their Job
and a training pod) and N/5 Endpoints (each with its own Model and EndpointConfig, InService
with one ready pod). The operator makes every Job, ConfigMap, Deployment, Service and PDB
itself; the benchmark plays the Job and Deployment controllers and kubelet (pods, Job status)
and passes until a pass writes nothing. Then: ``Operator.run_once()`` timed over ``--passes``
passes after a warm one, and every Kubernetes API call it makes counted (a pass should list
once per kind, not GET once per resource). Linear: the cost per resource at the largest size
is at most 1.5x that at the smallest. At the largest size one pass is profiled (cProfile, the
operator's thread; the emulator serves from its own thread, and waiting for it shows as
socket reads). The emulator's stored objects share the process's heap; they are frozen out of
the garbage collector (``gc.freeze``) before measuring, so its pauses are the operator's own.

    python benchmarks/operator_pass.py [--sizes 100 200 500 1000] [--passes 10]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import sys
import time
from collections import Counter
from dataclasses import dataclass

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _kube import (
    CallCounter,
    Cluster,
    Emulator,
    emulator_client,
    operator_settings,
    play_pod,
    ready_status,
    stamp,
)
from _server import percentile

from orchestrator.kube.operator import Operator

TOLERANCE = 1.5  # per-resource cost at the largest size / at the smallest
JOB_SPEC = {
    "algorithmSpecification": {"trainingImage": "registry.example/algo:1"},
    "resourceConfig": {"instanceType": "ml.m5.large"},
    "outputDataConfig": {"s3OutputPath": "s3://ml-bucket/out"},
    "stoppingCondition": {"maxRuntimeInSeconds": 86400},
}
MODEL_SPEC = {"primaryContainer": {"image": "registry.example/serve:1"}}


@dataclass
class Size:
    jobs: int
    endpoints: int
    resources: int  # custom resources in the namespace
    passes_ms: list[float]
    api_ms: list[float]  # in API calls: sent, served by the emulator, answer read
    gc_ms: list[float]  # in the garbage collector
    calls: Counter[str]  # per pass
    mix: str
    setup_s: float

    @property
    def p50(self) -> float:
        return percentile(self.passes_ms, 0.5)

    @property
    def per_resource(self) -> float:
        return self.p50 / self.resources


@dataclass
class Profiled:
    stats: pstats.Stats
    gc_ms: float


class GcClock:
    """Time spent in the garbage collector (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._tick)

    def _tick(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


gc_clock = GcClock()


def training(t: list[str]) -> dict[str, object]:
    """A pod past its download, the user's code running (kubelet's report)."""
    done = {"exitCode": 0, "startedAt": t[0], "finishedAt": t[1]}
    return {
        "phase": "Running",
        "initContainerStatuses": [{"name": "download", "state": {"terminated": done}}],
        "containerStatuses": [
            {"name": "algo", "state": {"running": {"startedAt": t[1]}}},
            {"name": "upload", "state": {"running": {"startedAt": t[1]}}},
        ],
    }


def succeeded(t: list[str]) -> dict[str, object]:
    status = training(t)
    status["phase"] = "Succeeded"
    algo = {"exitCode": 0, "startedAt": t[1], "finishedAt": t[2]}
    status["containerStatuses"][0]["state"] = {"terminated": algo}  # type: ignore[index]
    return status


def steady_state(cluster: Cluster, operator: Operator, counter: CallCounter, n: int) -> str:
    """Create the resources, let the operator make its objects, play the controllers, pass
    until nothing changes; the status mix it ended in."""
    m = n // 5
    for i in range(n):
        cluster.create("TrainingJob", f"job-{i:04d}", JOB_SPEC)
    for i in range(m):
        cluster.create("Model", f"model-{i:03d}", MODEL_SPEC)
        variant = {
            "variantName": "main",
            "modelName": f"model-{i:03d}",
            "initialInstanceCount": 1,
            "instanceType": "ml.m5.large",
        }
        cluster.create("EndpointConfig", f"cfg-{i:03d}", {"productionVariants": [variant]})
        cluster.create("Endpoint", f"ep-{i:03d}", {"endpointConfigName": f"cfg-{i:03d}"})
    operator.run_once()
    t = [stamp(s) for s in (-50, -40, -30, -20)]
    for job in cluster.items("Job"):
        name = job["metadata"]["name"]
        index = int(name.split("-")[1])
        if index % 5 == 0:
            complete = [{"type": "Complete", "status": "True", "lastTransitionTime": t[3]}]
            cluster.job_status(
                name,
                {"startTime": t[0], "succeeded": 1, "completionTime": t[3], "conditions": complete},
            )
            play_pod(cluster, job, f"{name}-pod", succeeded(t))
        else:
            cluster.job_status(name, {"startTime": t[0], "active": 1})
            play_pod(cluster, job, f"{name}-pod", training(t))
    for deployment in cluster.items("Deployment"):
        play_pod(cluster, deployment, f"{deployment['metadata']['name']}-0", ready_status(t[0]))
    for _ in range(8):
        counter.reset()
        operator.run_once()
        if counter.writes == 0:
            break
    else:
        raise SystemExit(f"N={n}: still writing after 8 passes: {dict(counter.calls)}")
    mix: Counter[str] = Counter()
    for kind, field in (("TrainingJob", "trainingJobStatus"), ("Endpoint", "endpointStatus")):
        for cr in cluster.custom.list_namespaced_custom_object(
            "orchestrator.dev", "v1alpha1", "ml", f"{kind.lower()}s"
        )["items"]:
            mix[f"{kind} {(cr.get('status') or {}).get(field)}"] += 1
    return ", ".join(f"{v} {k}" for k, v in sorted(mix.items()))


def measure(n: int, passes: int, profile: bool) -> tuple[Size, Profiled | None]:
    emulator = Emulator()
    stats = None
    try:
        with (
            emulator_client(emulator.url) as harness_api,
            emulator_client(emulator.url) as operator_api,
        ):
            cluster = Cluster(harness_api)
            counter = CallCounter(operator_api)
            operator = Operator(operator_api, operator_settings())
            t0 = time.perf_counter()
            mix = steady_state(cluster, operator, counter, n)
            setup_s = time.perf_counter() - t0
            # The emulator's store (every version of every object) shares this heap: out of
            # the collector's way, as it would be in another process.
            gc.collect()
            gc.freeze()
            operator.run_once()  # warm
            times, api, collecting, calls = [], [], [], Counter[str]()
            for _ in range(passes):
                counter.reset()
                gc_clock.seconds = 0.0
                t1 = time.perf_counter()
                operator.run_once()
                times.append((time.perf_counter() - t1) * 1000)
                api.append(counter.seconds * 1000)
                collecting.append(gc_clock.seconds * 1000)
                calls = Counter(counter.calls)
                if counter.writes:
                    raise SystemExit(f"N={n}: a steady pass wrote: {dict(counter.calls)}")
            if profile:
                gc_clock.seconds = 0.0
                profiler = cProfile.Profile()
                profiler.enable()
                operator.run_once()
                profiler.disable()
                stats = Profiled(pstats.Stats(profiler), gc_clock.seconds * 1000)
    finally:
        emulator.close()
        gc.unfreeze()
    m = n // 5
    size = Size(n, m, n + 3 * m, times, api, collecting, calls, mix, setup_s)
    return size, stats


def short(where: tuple[str, int, str]) -> str:
    path, line, func = where
    if path == "~":
        return func
    parts = path.split("/")
    tail = "/".join(
        parts[parts.index("site-packages") + 1 :] if "site-packages" in parts else parts[-2:]
    )
    return f"{tail}:{line} {func}"


def print_profile(profiled: Profiled, top: int) -> None:
    rows = profiled.stats.stats  # type: ignore[attr-defined]
    total = sum(tt for (_cc, _nc, tt, _ct, _callers) in rows.values())
    print(
        f"\nwhere one pass's time goes (cProfile, operator thread, {total * 1000:.0f} ms;\n"
        f"{profiled.gc_ms:.0f} ms of it in the garbage collector, counted as the own time of "
        "the call it interrupted)"
    )
    print(f"{'function':<72} {'calls':>7} {'own ms':>8} {'cum ms':>8}")
    ranked = sorted(rows.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    for where, (_cc, nc, tt, ct, _callers) in ranked:
        print(f"{short(where)[:72]:<72} {nc:>7} {tt * 1000:8.1f} {ct * 1000:8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 200, 500, 1000])
    parser.add_argument("--passes", type=int, default=10)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    started = time.perf_counter()
    sizes: list[Size] = []
    stats = None
    for n in args.sizes:
        size, s = measure(n, args.passes, profile=n == max(args.sizes))
        sizes.append(size)
        stats = s or stats
        print(f"N={n}: steady state in {size.setup_s:.0f} s: {size.mix}", file=sys.stderr)

    print(
        f"operator pass in steady state, {args.passes} passes after a warm one "
        f"(load {os.getloadavg()[0]:.2f})"
    )
    print(
        f"{'TrainingJobs':>12} {'Endpoints':>9} {'resources':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'ms/resource':>11} {'API ms':>7} {'GC ms':>6} {'rest ms':>7} {'lists':>5} "
        f"{'by name':>7}"
    )
    for s in sizes:
        lists = sum(v for k, v in s.calls.items() if k.startswith("GET list"))
        rest = [p - a - g for p, a, g in zip(s.passes_ms, s.api_ms, s.gc_ms, strict=True)]
        print(
            f"{s.jobs:>12} {s.endpoints:>9} {s.resources:>9} {s.p50:8.1f} "
            f"{percentile(s.passes_ms, 0.9):8.1f} {s.per_resource:11.3f} "
            f"{percentile(s.api_ms, 0.5):7.1f} {percentile(s.gc_ms, 0.5):6.1f} "
            f"{percentile(rest, 0.5):7.1f} {lists:>5} {sum(s.calls.values()) - lists:>7}"
        )
    first, last = sizes[0], sizes[-1]
    ratio = last.per_resource / first.per_resource
    growth = last.p50 / first.p50
    print(
        f"growth {first.jobs} -> {last.jobs} jobs: pass x{growth:.1f} for "
        f"x{last.resources / first.resources:.0f} resources; per-resource cost ratio "
        f"{ratio:.2f} (linear = 1.0); linear: {'yes' if ratio <= TOLERANCE else 'no'} "
        f"(tolerance: ratio <= {TOLERANCE})"
    )
    print(f"\nKubernetes API calls in one pass at {last.jobs} jobs:")
    for label, count in sorted(last.calls.items()):
        print(f"  {label:<40} {count:>5}")
    if stats is not None:
        print_profile(stats, args.top)
    print(f"\n(run took {time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
