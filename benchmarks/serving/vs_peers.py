"""Our inference server against KServe, MLServer and a bare FastAPI app, one model, one core.

Every server loads THE SAME model.joblib (a scikit-learn LogisticRegression on the bundled
breast-cancer data, trained here) and runs pinned to CPU 0 with one worker; wrk runs pinned
to CPU 1 (one thread) and POSTs the same row of 30 features in each server's own format:

    ours          POST /invocations              [[30 floats]]
    KServe v1     POST /v1/models/bench:predict  {"instances": [[30 floats]]}
    KServe v2     POST /v2/models/bench/infer    {"inputs": [{... FP64 [1, 30] ...}]}
    MLServer      POST /v2/models/bench/infer    (the same v2 body; MLServer has no v1)
    bare FastAPI  POST /predict                  [[30 floats]]

Each server is checked (200 and the right prediction) before and after it is timed. Runs are
interleaved (round after round over every server and concurrency) so that a change in the
machine's background load falls on all servers alike; the median of the runs is reported.

    bash benchmarks/serving/setup.sh                # once: wrk and the peers' virtualenvs
    python benchmarks/serving/vs_peers.py           # full: 3 x 10 s per point (~9 min)
    python benchmarks/serving/vs_peers.py --quick   # smoke run (~1.5 min)

By default KServe is measured on both its v1 and v2 REST paths and each ratio is taken against
the faster of the two at that concurrency; MLServer runs with ``parallel_workers: 0`` (inference
in the server process), its fastest single-worker setting here: ``--mlserver-workers both``
also measures ``parallel_workers: 1`` (one worker process behind the HTTP process).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import joblib
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    BENCH,
    HERE,
    Point,
    Target,
    fmt_ratio,
    free_port,
    interleaved,
    machine,
    met,
    out,
    print_points,
    require_tools,
    venv_python,
    version_of,
)

MODEL_NAME = "bench"
GOAL_KSERVE = 1.5
GOAL_MLSERVER = 1.2
GOAL_P50_OVERHEAD_MS = 1.0


def train(model_dir: Path) -> tuple[list[float], list[object]]:
    """Fit and save the model; return the benchmark row and the prediction expected for it."""
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x, y)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    row = [float(v) for v in x[0]]
    return row, model.predict([row]).tolist()


def v2_body(row: list[float]) -> bytes:
    tensor = {"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}
    return json.dumps({"inputs": [tensor]}).encode()


def v2_predictions(d: dict[str, object]) -> list[object]:
    outputs = d["outputs"]
    assert isinstance(outputs, list)
    return list(outputs[0]["data"])


def v1_predictions(d: dict[str, object]) -> list[object]:
    return list(d["predictions"])  # type: ignore[call-overload]


def ours(model_dir: Path, row: list[float]) -> Target:
    port = free_port()
    return Target(
        name="ours",
        argv=[
            sys.executable,
            *("-m", "orchestrator.serving", "--model-dir", str(model_dir), "--port", str(port)),
        ],
        port=port,
        health_path="/ping",
        path="/invocations",
        body=json.dumps([row]).encode(),
        content_type="application/json",
        read_predictions=v1_predictions,
    )


def kserve(model_dir: Path, row: list[float], protocol: str) -> Target:
    port = free_port()
    v1 = protocol == "v1"
    return Target(
        name=f"KServe {protocol}",
        argv=[
            str(venv_python("kserve")),
            str(HERE / "peers" / "kserve_server.py"),
            *("--model_dir", str(model_dir), "--model_name", MODEL_NAME),
            *("--http_port", str(port), "--workers", "1"),
            # No gRPC server, no per-request log lines (ours writes none either).
            *("--enable_grpc", "false", "--enable_latency_logging", "false"),
            *("--configure_logging", "false"),
        ],
        port=port,
        health_path=f"/v1/models/{MODEL_NAME}",
        path=f"/v1/models/{MODEL_NAME}:predict" if v1 else f"/v2/models/{MODEL_NAME}/infer",
        body=json.dumps({"instances": [row]}).encode() if v1 else v2_body(row),
        content_type="application/json",
        read_predictions=v1_predictions if v1 else v2_predictions,
    )


def mlserver(model_dir: Path, row: list[float], workers: int) -> Target:
    port, grpc_port = free_port(), free_port()
    root = BENCH / f"mlserver-pw{workers}"
    (root / MODEL_NAME).mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "parallel_workers": workers,
        # No access log, no metrics server or middleware, no gzip middleware: its fastest.
        "debug": False,
        "metrics_endpoint": None,
        "gzip_enabled": False,
        "load_models_at_startup": True,
    }
    (root / "settings.json").write_text(json.dumps(settings, indent=2))
    model_settings = {
        "name": MODEL_NAME,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": str(model_dir / "model.joblib"), "version": "v1"},
    }
    (root / MODEL_NAME / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    mlserver_bin = venv_python("mlserver").parent / "mlserver"
    return Target(
        name=f"MLServer pw{workers}",
        argv=[str(mlserver_bin), "start", str(root)],
        port=port,
        health_path=f"/v2/models/{MODEL_NAME}/ready",
        path=f"/v2/models/{MODEL_NAME}/infer",
        body=v2_body(row),
        content_type="application/json",
        read_predictions=v2_predictions,
        cwd=root,
    )


def bare(model_dir: Path, row: list[float]) -> Target:
    port = free_port()
    return Target(
        name="bare FastAPI",
        argv=[
            str(venv_python("bare")),
            str(HERE / "peers" / "bare_app.py"),
            *("--model-dir", str(model_dir), "--port", str(port)),
        ],
        port=port,
        health_path="/ping",
        path="/predict",
        body=json.dumps([row]).encode(),
        content_type="application/json",
        read_predictions=v1_predictions,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 x 3 s per point")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per point (3)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (5)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--kserve-protocol",
        choices=["v1", "v2", "both"],
        default="both",
        help="KServe REST path(s) to measure; ratios use the faster (both)",
    )
    parser.add_argument(
        "--mlserver-workers",
        choices=["0", "1", "both"],
        default="0",
        help="MLServer parallel_workers setting(s) to measure; ratios use the faster (0)",
    )
    args = parser.parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    for name, value in (("--runs", runs), ("--seconds", seconds)):
        if value <= 0:
            raise SystemExit(f"error: {name} must be positive, got {value}")
    if any(c < 1 for c in args.concurrency):
        raise SystemExit(f"error: --concurrency values must be >= 1, got {args.concurrency}")
    require_tools()

    model_dir = BENCH / "models" / "logreg"
    row, expected = train(model_dir)
    protocols = ["v1", "v2"] if args.kserve_protocol == "both" else [args.kserve_protocol]
    workers = [0, 1] if args.mlserver_workers == "both" else [int(args.mlserver_workers)]
    targets = [
        ours(model_dir, row),
        *(kserve(model_dir, row, p) for p in protocols),
        *(mlserver(model_dir, row, w) for w in workers),
        bare(model_dir, row),
    ]
    out(f"machine: {machine()}")
    out(
        "versions: "
        f"kserve {version_of(venv_python('kserve'), 'kserve')}, "
        f"mlserver {version_of(venv_python('mlserver'), 'mlserver')}, "
        f"fastapi {version_of(venv_python('bare'), 'fastapi')} / "
        f"uvicorn {version_of(venv_python('bare'), 'uvicorn')}, "
        f"scikit-learn {version_of(venv_python('bare'), 'scikit-learn')}"
    )
    out(
        f"model: LogisticRegression, breast-cancer, 1 row x 30 features; expected {expected}; "
        f"{runs} x {seconds:g} s per point after {warmup:g} s warm-up, median"
    )

    points = interleaved(
        targets,
        args.concurrency,
        expected,
        runs=runs,
        warmup=warmup,
        seconds=seconds,
        announce=True,
    )
    print_points(points, targets, args.concurrency)
    if any(p.errors for p in points.values()):
        out("\nWARNING: some runs had errors (non-2xx or socket errors); see the errors column")

    def best(prefix: str, conc: int) -> tuple[str, Point]:
        named = [(t.name, points[(t.name, conc)]) for t in targets if t.name.startswith(prefix)]
        return max(named, key=lambda item: item[1].rps)

    out()
    out(
        "| concurrency | ours / KServe | ours / MLServer | p50 ours - bare (ms) "
        "| ours / bare (req/s) |"
    )
    out("|---:|---:|---:|---:|---:|")
    verdicts: list[tuple[str, bool]] = []
    for conc in args.concurrency:
        mine = points[("ours", conc)]
        k_name, k = best("KServe", conc)
        m_name, m = best("MLServer", conc)
        floor = points[("bare FastAPI", conc)]
        vs_k, vs_m = mine.rps / k.rps, mine.rps / m.rps
        overhead = mine.p50_ms - floor.p50_ms
        out(
            f"| {conc} | {fmt_ratio(vs_k)} ({k_name}) | {fmt_ratio(vs_m)} ({m_name}) "
            f"| {overhead:+.2f} | {fmt_ratio(mine.rps / floor.rps)} |"
        )
        verdicts.append(
            (f"ours >= {GOAL_KSERVE}x KServe at concurrency {conc}", vs_k >= GOAL_KSERVE)
        )
        verdicts.append(
            (f"ours >= {GOAL_MLSERVER}x MLServer at concurrency {conc}", vs_m >= GOAL_MLSERVER)
        )
        if conc == min(args.concurrency):
            verdicts.append(
                (
                    f"p50 overhead over the bare app <= {GOAL_P50_OVERHEAD_MS:g} ms "
                    f"at concurrency {conc}",
                    overhead <= GOAL_P50_OVERHEAD_MS,
                )
            )
    out()
    for goal, ok in verdicts:
        out(f"- goal {goal}: {met(ok)}")


if __name__ == "__main__":
    main()
