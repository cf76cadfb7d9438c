"""Adaptive batching in our inference server: the same model with batching off and on.

The model is one whose cost per call barely grows with rows: a RandomForestClassifier of
100 trees on the breast-cancer data (about 7.5 ms a call whether it gets 1 row or 32, on the
development machine), so a server that gathers concurrent requests into one ``predict`` call
should serve many more of them per second. Both servers run pinned to CPU 0, wrk to CPU 1,
each request one row of 30 features; runs are interleaved and the median reported.

    python benchmarks/serving/batching.py [--quick] [--max-batch-size 32] [--max-batch-delay-ms 2]

Goals: >= 2x requests/s with batching at concurrency 32, >= 0.95x at concurrency 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    BENCH,
    Target,
    fmt_ratio,
    free_port,
    interleaved,
    machine,
    met,
    out,
    print_points,
    require_tools,
)

GOAL_HIGH = 2.0
GOAL_LOW = 0.95
BATCH_FLAGS = ("--max-batch-size", "--max-batch-delay-ms")


def train(model_dir: Path) -> tuple[list[float], list[object]]:
    x, y = load_breast_cancer(return_X_y=True)
    model = RandomForestClassifier(n_estimators=100, random_state=0).fit(x, y)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    row = [float(v) for v in x[0]]
    return row, model.predict([row]).tolist()


def batching_supported() -> bool:
    help_text = subprocess.run(
        [sys.executable, "-m", "orchestrator.serving", "--help"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return all(flag in help_text for flag in BATCH_FLAGS)


def ours(name: str, model_dir: Path, row: list[float], extra: list[str]) -> Target:
    port = free_port()
    return Target(
        name=name,
        argv=[
            sys.executable,
            *("-m", "orchestrator.serving", "--model-dir", str(model_dir), "--port", str(port)),
            *extra,
        ],
        port=port,
        health_path="/ping",
        path="/invocations",
        body=json.dumps([row]).encode(),
        content_type="application/json",
        read_predictions=lambda d: list(d["predictions"]),  # type: ignore[call-overload]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 x 3 s per point")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per point (3)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (5)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-delay-ms", type=float, default=2.0)
    args = parser.parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    for name, value in (("--runs", runs), ("--seconds", seconds)):
        if value <= 0:
            raise SystemExit(f"error: {name} must be positive, got {value}")
    if any(c < 1 for c in args.concurrency):
        raise SystemExit(f"error: --concurrency values must be >= 1, got {args.concurrency}")
    if args.max_batch_size < 1:
        raise SystemExit(f"error: --max-batch-size must be >= 1, got {args.max_batch_size}")
    if args.max_batch_delay_ms < 0:
        raise SystemExit(f"error: --max-batch-delay-ms must be >= 0, got {args.max_batch_delay_ms}")
    require_tools()
    supported = batching_supported()

    model_dir = BENCH / "models" / "forest"
    row, expected = train(model_dir)
    on_flags = [
        "--max-batch-size",
        str(args.max_batch_size),
        "--max-batch-delay-ms",
        f"{args.max_batch_delay_ms:g}",
    ]
    on_name = f"batching on ({args.max_batch_size} rows, {args.max_batch_delay_ms:g} ms)"
    targets = [ours("batching off", model_dir, row, [])]
    if supported:
        targets.append(ours(on_name, model_dir, row, on_flags))
    out(f"machine: {machine()}")
    out(
        f"model: RandomForestClassifier(100 trees), breast-cancer, 1 row x 30 features; "
        f"{runs} x {seconds:g} s per point after {warmup:g} s warm-up, median"
    )
    if not supported:
        out(
            "ours has no "
            + " / ".join(BATCH_FLAGS)
            + " (python -m orchestrator.serving --help): measuring batching off only"
        )

    points = interleaved(
        targets,
        args.concurrency,
        expected,
        runs=runs,
        warmup=warmup,
        seconds=seconds,
    )
    print_points(points, targets, args.concurrency)
    out()
    if not supported:
        out(f"- goal >= {GOAL_HIGH:g}x at the highest concurrency: NOT measured (no flags)")
        out(f"- goal >= {GOAL_LOW:g}x at concurrency 1: NOT measured (no flags)")
        return
    for conc in args.concurrency:
        ratio = points[(on_name, conc)].rps / points[("batching off", conc)].rps
        goal = GOAL_LOW if conc == 1 else GOAL_HIGH if conc == max(args.concurrency) else None
        verdict = f" (goal >= {goal:g}x: {met(ratio >= goal)})" if goal is not None else ""
        out(f"- on / off at concurrency {conc}: {fmt_ratio(ratio)}{verdict}")


if __name__ == "__main__":
    main()
