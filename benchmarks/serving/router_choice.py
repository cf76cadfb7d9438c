"""How the data plane's proxy hop was chosen: candidate servers and clients side by side.

Our replica (``python -m orchestrator.serving``) and every candidate proxy in front of it run
pinned to CPU 0, wrk on CPU 1, one row per request, runs interleaved as in ``vs_peers.py``.
Each candidate is a minimal invocation proxy (``peers/router_candidates.py``): read the body,
POST it to the replica on a keep-alive connection, return the answer. Besides req/s, the
table shows the proxy's own CPU per request (user + system time of its processes over the
run, from ``/proc``): on a shared core that is what a proxy takes from the replica, and it is
far steadier than req/s on a busy machine.

    bash benchmarks/serving/setup.sh              # once: wrk, nginx, .bench/venv-router
    python benchmarks/serving/router_choice.py    # 3 x 5 s per point; --quick: 1 x 2 s
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    BENCH,
    HERE,
    PIDS,
    Target,
    cpu_seconds,
    free_port,
    machine,
    out,
    require_tools,
    running,
    venv_python,
    verify,
    wrk,
)
from proxies import nginx
from vs_peers import ours, train

CANDIDATES = [
    ("uvicorn", "pool"),
    ("uvicorn", "aiohttp"),
    ("uvicorn", "httpx"),
    ("granian", "pool"),
    ("aiohttp", "pool"),
    ("aiohttp", "aiohttp"),
]


def candidate(server: str, client: str, upstream: Target) -> Target:
    port = free_port()
    return replace(
        upstream,
        name=f"{server} + {client}",
        argv=[
            str(venv_python("router")),
            str(HERE / "peers" / "router_candidates.py"),
            *("--server", server, "--client", client),
            *("--port", str(port), "--upstream", str(upstream.port)),
        ],
        port=port,
        health_path="/ping",
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--runs", type=int, default=None)
    p.add_argument("--seconds", type=float, default=None)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = p.parse_args()
    runs = args.runs or (1 if args.quick else 3)
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    require_tools()
    rows, predictions = train(BENCH / "models" / "logreg")
    replica = ours(BENCH / "models" / "logreg", rows[:1])
    targets = [replica, nginx(replica), *(candidate(s, c, replica) for s, c in CANDIDATES)]
    out(f"machine: {machine()}")
    figures: dict[tuple[str, int], list[tuple[float, float, float, float]]] = {}
    from contextlib import ExitStack

    with ExitStack() as stack:
        for t in targets:
            stack.enter_context(running(t))
            verify(t, predictions[:1], count=5)
        for conc in args.concurrency:
            for t in targets:
                wrk(t, conc, 1)  # warm-up
        for r in range(runs):
            for conc in args.concurrency:
                for t in targets:
                    pid = PIDS[t.name]
                    before = cpu_seconds(pid)
                    run = wrk(t, conc, seconds)
                    used = cpu_seconds(pid) - before
                    n = run.rps * (run.ended - run.started)
                    us = used / n * 1e6 if t is not replica and n else 0.0
                    figures.setdefault((t.name, conc), []).append(
                        (run.rps, run.p50_ms, run.p99_ms, us)
                    )
            out(f"round {r + 1}/{runs} done")
    out()
    out(
        "| proxy | concurrency | req/s | / replica direct | p50 (ms) | p99 (ms) | proxy CPU per request (us) |"
    )
    out("|---|---:|---:|---:|---:|---:|---:|")
    for conc in args.concurrency:
        base = sorted(f[0] for f in figures[(replica.name, conc)])[runs // 2]
        for t in targets:
            fs = sorted(figures[(t.name, conc)])
            rps, p50, p99, _ = fs[runs // 2]
            us = sorted(f[3] for f in fs)[runs // 2]
            name = "replica direct" if t is replica else t.name
            cpu = "-" if t is replica else f"{us:.0f}"
            out(
                f"| {name} | {conc} | {rps:.0f} | {rps / base:.2f}x | {p50:.2f} | {p99:.2f} | {cpu} |"
            )
    out()
    out(json.dumps({"runs": runs, "seconds": seconds}))


if __name__ == "__main__":
    main()
