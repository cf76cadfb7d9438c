"""Our inference server and our endpoint path against KServe, MLServer, a bare FastAPI app
and nginx, one model, one core.

Every server loads THE SAME model.joblib (a scikit-learn LogisticRegression on the bundled
breast-cancer data, trained here) and runs pinned to CPU 0 with one worker; wrk runs pinned
to CPU 1 (one thread) and POSTs the same rows of 30 features in each server's own format:

    ours           POST /invocations                   [[30 floats], ...]  (the replica)
    control plane  POST /endpoints/bench/invocations   the same, with an API key: the
                   endpoint as users call it (orch server, its replica on the same core)
    nginx          POST /invocations                   the same, through nginx to ours
    KServe v1      POST /v1/models/bench:predict       {"instances": [[30 floats], ...]}
    KServe v2      POST /v2/models/bench/infer         {"inputs": [{... FP64 [N, 30] ...}]}
    MLServer       POST /v2/models/bench/infer         (the same v2 body; MLServer has no v1)
    bare FastAPI   POST /predict                       [[30 floats]]

With one row (every server) and 100 rows (ours, the control plane, nginx, KServe); the
proxy paths are set up as ``proxies.py`` says.

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
import statistics
import sys
from dataclasses import replace
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
from proxies import control_plane, nginx, overhead, wait_quiet

MODEL_NAME = "bench"
GOAL_KSERVE = 1.5
GOAL_MLSERVER = 1.2
GOAL_P50_OVERHEAD_MS = 1.0
# The control plane's path (the endpoint as users call it), as ratios in the same run.
GOAL_CP_VS_REPLICA = 0.6
GOAL_CP_VS_NGINX = 0.9
GOAL_CP_VS_KSERVE_AT_32 = 1.0
GOAL_NO_FALL = 0.95  # req/s at 32 over req/s at 8
GOAL_P99_OVER_P50 = 3.0  # at 32
GOAL_OVERHEAD_P50_MS = 0.3  # OverheadLatency at concurrency 1


def train(model_dir: Path) -> tuple[list[list[float]], list[object]]:
    """Fit and save the model; return the first 100 rows and the predictions for them."""
    x, y = load_breast_cancer(return_X_y=True)
    model = LogisticRegression(max_iter=5000).fit(x, y)
    model_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, model_dir / "model.joblib")
    rows = [[float(v) for v in r] for r in x[:100]]
    return rows, model.predict(rows).tolist()


def v2_body(rows: list[list[float]]) -> bytes:
    data = [v for r in rows for v in r]
    tensor = {
        "name": "input-0",
        "shape": [len(rows), len(rows[0])],
        "datatype": "FP64",
        "data": data,
    }
    return json.dumps({"inputs": [tensor]}).encode()


def v2_predictions(d: dict[str, object]) -> list[object]:
    outputs = d["outputs"]
    assert isinstance(outputs, list)
    return list(outputs[0]["data"])


def v1_predictions(d: dict[str, object]) -> list[object]:
    return list(d["predictions"])  # type: ignore[call-overload]


def ours(model_dir: Path, rows: list[list[float]]) -> Target:
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
        body=json.dumps(rows).encode(),
        content_type="application/json",
        read_predictions=v1_predictions,
    )


def kserve(model_dir: Path, rows: list[list[float]], protocol: str) -> Target:
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
        body=json.dumps({"instances": rows}).encode() if v1 else v2_body(rows),
        content_type="application/json",
        read_predictions=v1_predictions if v1 else v2_predictions,
    )


def mlserver(model_dir: Path, rows: list[list[float]], workers: int) -> Target:
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
        body=v2_body(rows),
        content_type="application/json",
        read_predictions=v2_predictions,
        cwd=root,
    )


def bare(model_dir: Path, rows: list[list[float]]) -> Target:
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
        body=json.dumps(rows).encode(),
        content_type="application/json",
        read_predictions=v1_predictions,
    )


def with_rows(
    target: Target, rows: list[list[float]], body: bytes, expected: list[object]
) -> Target:
    """The same server as ``target``, POSTing ``rows`` rows."""
    return replace(
        target,
        name=f"{target.name} [{len(rows)} rows]",
        body=body,
        expected=expected,
        server_of=target.name,
        prepare=None,
        cleanup=None,
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 x 3 s per point")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per point (3)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (5)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1, 100], choices=[1, 100],
        help="rows per request: 1 (every server) and 100 (ours, control plane, nginx, KServe)",
    )  # fmt: skip
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
    parser.add_argument(
        "--nginx-default-buffers", action="store_true",
        help="also measure nginx with its default client_body_buffer_size (the 40 ms stall)",
    )  # fmt: skip
    parser.add_argument(
        "--wait-quiet", type=float, default=None, metavar="LOAD",
        help="first wait (up to 20 min) until the 1-minute load is under LOAD",
    )  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 5.0)
    for name, value in (("--runs", runs), ("--seconds", seconds)):
        if value <= 0:
            raise SystemExit(f"error: {name} must be positive, got {value}")
    if any(c < 1 for c in args.concurrency):
        raise SystemExit(f"error: --concurrency values must be >= 1, got {args.concurrency}")
    require_tools()
    if args.wait_quiet is not None:
        out(f"waiting for a 1-minute load under {args.wait_quiet} ...")
        out(f"load {wait_quiet(args.wait_quiet, 1200):.2f}")

    model_dir = BENCH / "models" / "logreg"
    rows, predictions = train(model_dir)
    one, expected = rows[:1], predictions[:1]
    protocols = ["v1", "v2"] if args.kserve_protocol == "both" else [args.kserve_protocol]
    workers = [0, 1] if args.mlserver_workers == "both" else [int(args.mlserver_workers)]
    replica = ours(model_dir, one)
    cp = control_plane(model_dir, replica.body, v1_predictions)
    proxies = [nginx(replica)]
    if args.nginx_default_buffers:
        proxies.append(nginx(replica, default_buffers=True))
    peers = [kserve(model_dir, one, p) for p in protocols]
    first = [
        replica,
        cp,
        *proxies,
        *peers,
        *(mlserver(model_dir, one, w) for w in workers),
        bare(model_dir, one),
    ]
    targets = [t for t in first if 1 in args.rows]
    if 100 in args.rows:
        body100 = json.dumps(rows).encode()
        kbody = {
            "v1": json.dumps({"instances": rows}).encode(),
            "v2": v2_body(rows),
        }
        targets += [with_rows(t, rows, body100, predictions) for t in (replica, cp, *proxies)]
        targets += [
            with_rows(t, rows, kbody[p], predictions) for t, p in zip(peers, protocols, strict=True)
        ]
        if 1 not in args.rows:  # the servers the 100-row loads use still have to start
            targets = [replica, cp, *proxies, *peers, *targets]
    out(f"machine: {machine()}")
    out(
        "versions: "
        f"kserve {version_of(venv_python('kserve'), 'kserve')}, "
        f"mlserver {version_of(venv_python('mlserver'), 'mlserver')}, "
        f"fastapi {version_of(venv_python('bare'), 'fastapi')} / "
        f"uvicorn {version_of(venv_python('bare'), 'uvicorn')}, "
        f"scikit-learn {version_of(venv_python('bare'), 'scikit-learn')}, {nginx_version()}"
    )
    out(
        f"model: LogisticRegression, breast-cancer, {' and '.join(map(str, args.rows))} row(s) x "
        f"30 features; {runs} x {seconds:g} s per point after {warmup:g} s warm-up, median"
    )

    overheads: dict[tuple[str, int], list[tuple[float, float]]] = {}

    def read_overheads(points: dict[tuple[str, int], Point]) -> None:
        for (name, conc), point in points.items():
            if name.startswith(cp.name):
                overheads[(name, conc)] = overhead(cp, point.runs)

    points = interleaved(
        targets,
        args.concurrency,
        expected,
        runs=runs,
        warmup=warmup,
        seconds=seconds,
        announce=True,
        before_stop=read_overheads,
    )
    print_points(points, targets, args.concurrency)
    if any(p.errors for p in points.values()):
        out("\nWARNING: some runs had errors (non-2xx or socket errors); see the errors column")
    verdicts: list[tuple[str, bool]] = []
    if 1 in args.rows:
        verdicts += replica_goals(points, targets, args.concurrency)
    for n in args.rows:
        verdicts += control_plane_goals(points, overheads, targets, args.concurrency, n)
    out()
    for goal, ok in verdicts:
        out(f"- goal {goal}: {met(ok)}")


def nginx_version() -> str:
    import shutil
    import subprocess

    found = shutil.which("nginx") or "/usr/sbin/nginx"
    proc = subprocess.run([found, "-v"], capture_output=True, text=True, check=False)
    return (proc.stderr or proc.stdout).strip().replace("nginx version: ", "") or "nginx ?"


def _best(
    points: dict[tuple[str, int], Point],
    targets: list[Target],
    prefix: str,
    suffix: str,
    conc: int,
) -> tuple[str, Point]:
    """The faster of the peers named ``prefix...`` at this row count (``suffix``)."""
    named = [
        (t.name, points[(t.name, conc)])
        for t in targets
        if t.name.startswith(prefix)
        and (t.name.endswith(suffix) if suffix else " [" not in t.name)
        and (t.name, conc) in points
    ]
    return max(named, key=lambda item: item[1].rps)


def replica_goals(
    points: dict[tuple[str, int], Point], targets: list[Target], concurrencies: list[int]
) -> list[tuple[str, bool]]:
    """The replica against its peers (one row)."""
    out()
    out(
        "| concurrency | ours / KServe | ours / MLServer | p50 ours - bare (ms) "
        "| ours / bare (req/s) |"
    )
    out("|---:|---:|---:|---:|---:|")
    verdicts: list[tuple[str, bool]] = []
    for conc in concurrencies:
        mine = points[("ours", conc)]
        k_name, k = _best(points, targets, "KServe", "", conc)
        m_name, m = _best(points, targets, "MLServer", "", conc)
        floor = points[("bare FastAPI", conc)]
        vs_k, vs_m = mine.rps / k.rps, mine.rps / m.rps
        overhead_ms = mine.p50_ms - floor.p50_ms
        out(
            f"| {conc} | {fmt_ratio(vs_k)} ({k_name}) | {fmt_ratio(vs_m)} ({m_name}) "
            f"| {overhead_ms:+.2f} | {fmt_ratio(mine.rps / floor.rps)} |"
        )
        verdicts.append(
            (f"ours >= {GOAL_KSERVE}x KServe at concurrency {conc}", vs_k >= GOAL_KSERVE)
        )
        verdicts.append(
            (f"ours >= {GOAL_MLSERVER}x MLServer at concurrency {conc}", vs_m >= GOAL_MLSERVER)
        )
        if conc == min(concurrencies):
            verdicts.append(
                (
                    f"p50 overhead over the bare app <= {GOAL_P50_OVERHEAD_MS:g} ms "
                    f"at concurrency {conc}",
                    overhead_ms <= GOAL_P50_OVERHEAD_MS,
                )
            )
    return verdicts


def control_plane_goals(
    points: dict[tuple[str, int], Point],
    overheads: dict[tuple[str, int], list[tuple[float, float]]],
    targets: list[Target],
    concurrencies: list[int],
    rows: int,
) -> list[tuple[str, bool]]:
    """The endpoint through the control plane against the replica direct, nginx and KServe."""
    suffix = "" if rows == 1 else f" [{rows} rows]"
    cp, replica, proxy = (points_of(points, n + suffix) for n in ("control plane", "ours", "nginx"))
    out()
    out(f"Through the control plane, {rows} row{'s' if rows > 1 else ''} per request:")
    out()
    out(
        "| concurrency | control plane req/s | / replica direct | / nginx-fronted | nginx / replica "
        "| / KServe (faster path) | p99 / p50 | OverheadLatency p50 / p99 (ms) |"
    )
    out("|---:|---:|---:|---:|---:|---:|---:|---:|")
    verdicts: list[tuple[str, bool]] = []
    label = f"{rows} row{'s' if rows > 1 else ''}"
    for conc in concurrencies:
        c, r, n = cp[conc], replica[conc], proxy[conc]
        k_name, k = _best(points, targets, "KServe", suffix, conc)
        per_run = overheads.get(("control plane" + suffix, conc), [])
        o50 = statistics.median(p for p, _ in per_run) if per_run else float("nan")
        o99 = statistics.median(p for _, p in per_run) if per_run else float("nan")
        out(
            f"| {conc} | {c.rps:.0f} | {fmt_ratio(c.rps / r.rps)} | {fmt_ratio(c.rps / n.rps)} "
            f"| {fmt_ratio(n.rps / r.rps)} | {fmt_ratio(c.rps / k.rps)} ({k_name}) "
            f"| {c.p99_ms / c.p50_ms:.1f} | {o50:.3f} / {o99:.3f} |"
        )
        verdicts.append(
            (
                f"{label}: control plane >= {GOAL_CP_VS_REPLICA}x the replica direct at concurrency {conc}",
                c.rps / r.rps >= GOAL_CP_VS_REPLICA,
            )
        )
        verdicts.append(
            (
                f"{label}: control plane >= {GOAL_CP_VS_NGINX}x the nginx-fronted replica at concurrency {conc}",
                c.rps / n.rps >= GOAL_CP_VS_NGINX,
            )
        )
        if conc == 32:
            verdicts.append(
                (
                    f"{label}: control plane >= {GOAL_CP_VS_KSERVE_AT_32}x KServe direct at concurrency 32",
                    c.rps / k.rps >= GOAL_CP_VS_KSERVE_AT_32,
                )
            )
            verdicts.append(
                (
                    f"{label}: control plane p99 <= {GOAL_P99_OVER_P50:g}x p50 at concurrency 32",
                    c.p99_ms <= GOAL_P99_OVER_P50 * c.p50_ms,
                )
            )
            if 8 in cp:
                verdicts.append(
                    (
                        f"{label}: control plane req/s at 32 >= {GOAL_NO_FALL}x at 8",
                        c.rps >= GOAL_NO_FALL * cp[8].rps,
                    )
                )
        if conc == 1 and rows == 1:
            verdicts.append(
                (
                    f"OverheadLatency p50 <= {GOAL_OVERHEAD_P50_MS} ms at concurrency 1 (1 row)",
                    o50 <= GOAL_OVERHEAD_P50_MS,
                )
            )
    return verdicts


def points_of(points: dict[tuple[str, int], Point], name: str) -> dict[int, Point]:
    return {conc: p for (n, conc), p in points.items() if n == name}


if __name__ == "__main__":
    main()
