"""Hyperparameter tuning: Bayesian vs Random trials-to-target, tuner overhead, Search.

    python benchmarks/tuning.py bayes [--seeds 20] [--cap 200] [--parallel 1,4]
    python benchmarks/tuning.py overhead [--trials 100] [--parallel 8]
    python benchmarks/tuning.py search [tuning_search.py's options]
    python benchmarks/tuning.py all

``bayes`` drives the real tuner (planner + reconciler + REST) on the in-process control plane
with the fake backend: each pass, every running trial is completed with the objective computed
from the hyperparameters in its stored spec. The tuning job has RandomSeed = the seed and
TuningJobCompletionCriteria.TargetObjectiveMetricValue = the target, so the tuner itself stops
at the target; trials-to-target is the number of trials it had launched when it completed
(Describe's TrainingJobStatusCounters). A run that ends at MaxNumberOfTrainingJobs (the cap)
without reaching the target counts as the cap and as a miss. Tasks: the 6-dimensional
Hartmann function (minimize) and the built-in mlp's validation accuracy on digits, read from
a table of real trainings (``benchmarks/_mlp_table.py``).

``overhead`` runs a real control plane on the process backend (the controller thread of
``orch server``) and a tuning job of trials that print ``loss=<value>`` and exit.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from orchestrator.testing import local_control_plane

TUNING = "/api/v1/hyper-parameter-tuning-jobs"
TERMINAL = {"Completed", "Failed", "Stopped"}

# --- the tasks --------------------------------------------------------------------------------
_A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
_P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
_ALPHA = [1.0, 1.2, 3.0, 3.2]


def hartmann6(x: Sequence[float]) -> float:
    """The 6-dimensional Hartmann function on [0, 1]^6; global minimum -3.32237."""
    return -sum(
        _ALPHA[i] * math.exp(-sum(_A[i][j] * (x[j] - _P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


class Task:
    def __init__(
        self,
        name: str,
        metric: str,
        maximize: bool,
        target: float,
        ranges: dict[str, Any],
        objective: Callable[[dict[str, str]], float],
    ) -> None:
        self.name, self.metric, self.maximize, self.target = name, metric, maximize, target
        self.ranges, self.objective = ranges, objective


def hartmann_task(target: float) -> Task:
    names = [f"x{i}" for i in range(6)]
    return Task(
        "hartmann6",
        "loss",
        False,
        target,
        {
            "ContinuousParameterRanges": [
                {"Name": n, "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"}
                for n in names
            ]
        },
        lambda hp: hartmann6([float(hp[n]) for n in names]),
    )


def mlp_task(target: float) -> Task:
    from _mlp_table import load_table, lookup

    table = load_table()
    return Task(
        "mlp-digits",
        "validation:accuracy",
        True,
        target,
        {
            "ContinuousParameterRanges": [
                {
                    "Name": "learning_rate",
                    "MinValue": "0.0001",
                    "MaxValue": "0.1",
                    "ScalingType": "Logarithmic",
                },
                {"Name": "dropout", "MinValue": "0", "MaxValue": "0.6", "ScalingType": "Linear"},
            ],
            "IntegerParameterRanges": [
                {
                    "Name": "hidden_units",
                    "MinValue": "16",
                    "MaxValue": "128",
                    "ScalingType": "Logarithmic",
                },
                {"Name": "num_layers", "MinValue": "1", "MaxValue": "3", "ScalingType": "Linear"},
            ],
        },
        lambda hp: lookup(table, hp),
    )


# --- one tuning job through the real tuner ----------------------------------------------------
def tuning_spec(
    name: str, task: Task, strategy: str, seed: int, cap: int, parallel: int
) -> dict[str, Any]:
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "HyperParameterTuningJobObjective": {
                "Type": "Maximize" if task.maximize else "Minimize",
                "MetricName": task.metric,
            },
            "ResourceLimits": {
                "MaxNumberOfTrainingJobs": cap,
                "MaxParallelTrainingJobs": parallel,
            },
            "ParameterRanges": task.ranges,
            "TuningJobCompletionCriteria": {"TargetObjectiveMetricValue": task.target},
            "RandomSeed": seed,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {
                "TrainingImage": "bench:1",
                "MetricDefinitions": [
                    {"Name": task.metric, "Regex": f"{task.metric}=(\\S+)"},
                ],
            },
            "StaticHyperParameters": {"task": task.name},
        },
    }


def trials_to_target(
    task: Task, strategy: str, seed: int, cap: int, parallel: int
) -> tuple[int, bool, float]:
    """(trials launched when the tuning job completed, whether it reached the target, s)."""
    started = time.perf_counter()
    name = f"{task.name[:4]}-{strategy[:4].lower()}-s{seed}"
    with tempfile.TemporaryDirectory() as d, local_control_plane(Path(d)) as lcp:
        http = lcp.client._http
        r = http.post(TUNING, json=tuning_spec(name, task, strategy, seed, cap, parallel))
        r.raise_for_status()
        store, backend = lcp.plane.store, lcp.plane.backend
        for _ in range(4 * cap + 10):
            lcp.controller.run_pass()
            for job, observed in list(backend.jobs.items()):
                if observed.state == "running":
                    hp = store.get("TrainingJob", job).spec["HyperParameters"]
                    backend.complete(job, metrics={task.metric: task.objective(hp)})
            if store.get("HyperParameterTuningJob", name).phase in TERMINAL:
                break
        described = http.get(f"{TUNING}/{name}").json()
    if described["HyperParameterTuningJobStatus"] != "Completed":
        raise RuntimeError(f"{name}: {described['HyperParameterTuningJobStatus']}: {described}")
    launched = sum(described["TrainingJobStatusCounters"].values())
    reached = described["CompletionReason"].startswith("TargetObjectiveMetricValue")
    return launched, reached, time.perf_counter() - started


def bayes(argv: Sequence[str]) -> int:
    ap = argparse.ArgumentParser(prog="tuning.py bayes")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--first-seed", type=int, default=0, help="RandomSeed of the first run")
    ap.add_argument("--cap", type=int, default=200)
    ap.add_argument("--parallel", default="1,4")
    ap.add_argument("--tasks", default="hartmann6,mlp-digits")
    ap.add_argument("--hartmann-target", type=float, default=-3.0)
    ap.add_argument("--mlp-target", type=float, default=0.975)
    args = ap.parse_args(argv)
    makers = {
        "hartmann6": lambda: hartmann_task(args.hartmann_target),
        "mlp-digits": lambda: mlp_task(args.mlp_target),
    }
    tasks = [makers[t]() for t in args.tasks.split(",")]
    print(
        f"Bayesian vs Random: trials to reach the target, {args.seeds} seeds "
        f"(RandomSeed {args.first_seed}..{args.first_seed + args.seeds - 1}), cap {args.cap} trials (a miss counts as {args.cap})"
    )
    header = (
        f"{'task':10} {'target':>7} {'par':>3} | {'random mean':>11} {'median':>6} {'miss':>4} |"
        f" {'bayes mean':>10} {'median':>6} {'miss':>4} | {'mean x':>6} {'median x':>8} | {'s':>5}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for task in tasks:
        for parallel in (int(p) for p in args.parallel.split(",")):
            t0 = time.perf_counter()
            got: dict[str, list[tuple[int, bool, float]]] = {}
            for strategy in ("Random", "Bayesian"):
                got[strategy] = [
                    trials_to_target(task, strategy, seed, args.cap, parallel)
                    for seed in range(args.first_seed, args.first_seed + args.seeds)
                ]
            r = [n for n, _, _ in got["Random"]]
            b = [n for n, _, _ in got["Bayesian"]]
            r_miss = sum(not hit for _, hit, _ in got["Random"])
            b_miss = sum(not hit for _, hit, _ in got["Bayesian"])
            mean_x = statistics.mean(b) / statistics.mean(r)
            median_x = statistics.median(b) / statistics.median(r)
            ok = ok and mean_x <= 0.6
            print(
                f"{task.name:10} {task.target:>7g} {parallel:>3} | {statistics.mean(r):>11.1f}"
                f" {statistics.median(r):>6.1f} {r_miss:>4} | {statistics.mean(b):>10.1f}"
                f" {statistics.median(b):>6.1f} {b_miss:>4} | {mean_x:>6.2f} {median_x:>8.2f} |"
                f" {time.perf_counter() - t0:>5.0f}",
                flush=True,
            )
    print(f"goal (Bayesian mean <= 0.6x Random's on every row): {'met' if ok else 'MISSED'}")
    return 0


def search(argv: Sequence[str]) -> int:
    from tuning_search import main

    return main(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    from tuning_overhead import overhead

    commands: dict[str, Callable[[Sequence[str]], int]] = {
        "bayes": bayes,
        "overhead": overhead,
        "search": search,
    }
    ap = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0],
        epilog="Options after the command go to it: tuning.py bayes --help",
    )
    ap.add_argument("command", choices=[*commands, "all"])
    ap.add_argument("options", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    if args.command == "all":
        return max(commands[c]([]) for c in commands)
    return commands[args.command](args.options)


if __name__ == "__main__":
    raise SystemExit(main())
