"""What SigV4 costs on the invocation path: InvokeEndpoint signed as boto3's sagemaker-runtime
signs it, against the same request with a bearer API key, through the control plane.

The setup is vs_peers.py's control plane (``proxies.control_plane``: ``orch server`` on the
process backend, an endpoint with ``AuthMode: ApiKey`` for a LogisticRegression, its replica
on the same core, CPU 0; wrk on CPU 1, one thread), with an ``invoke`` API key and an
``invoke`` SigV4 access key. Both modes POST the same one-row body to
``/endpoints/bench/invocations``; they differ only in their auth headers:

    bearer   Authorization: Bearer orch_...
    SigV4    X-Amz-Date and Authorization: AWS4-HMAC-SHA256 ..., signed by botocore's own
             SigV4Auth over accept, content-type, host and x-amz-date and the body's SHA-256
             (what boto3 sends; no x-amz-content-sha256 header)

The client does no signing while it is timed: before each run a pool of 64 requests is signed
(each a second apart, so each has its own signature; the server keeps no replay cache, so each
is verified in full), written to a file, and wrk (``post_pool.lua``) sends them in turn. Before
timing, boto3's ``sagemaker-runtime`` ``invoke_endpoint`` must get the model's prediction back
through the same server, and the bearer key the same.

Runs are interleaved (round after round over both modes and every concurrency) and the median
of the runs is reported: p50/p99 latency and req/s from wrk, the endpoint's OverheadLatency p50
from the control plane's own metrics (the request's time on the control plane less the
replica's), and CPU per request of the control plane's process tree (the replica included: the
same in both modes, so the difference is SigV4's). The goal: SigV4's p50 latency and its
OverheadLatency p50 each at most 0.15 ms above bearer's at concurrency 1.

First, without a network, a replica or load from anything else (``in_process``): the data
plane's fast path itself, uvicorn's httptools protocol with the front behind it and a stub
router answering at once, fed the same two requests as bytes, timed from the bytes arriving to
the answer's write: the server's own cost per request in each mode, alone.

    bash benchmarks/serving/setup.sh                 # once: wrk
    python benchmarks/serving/sigv4_cost.py          # 5 x 10 s per point (~5 min)
    python benchmarks/serving/sigv4_cost.py --quick  # smoke run (~1 min)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (
    BENCH,
    HERE,
    LOAD_CPU,
    PIDS,
    SERVER_CPU,
    Target,
    WrkRun,
    cpu_seconds,
    machine,
    met,
    out,
    running,
    verify,
)
from proxies import ENDPOINT, control_plane, overhead, wait_quiet
from vs_peers import train, v1_predictions

GOAL_MS = 0.15
POOL = 64
LUA = HERE / "post_pool.lua"
REGION = "us-east-1"


@dataclass(frozen=True)
class Run:
    wrk: WrkRun
    cpu_us: float  # CPU of the control plane's process tree per request
    requests: int


def access_key(root: Path) -> tuple[str, str]:
    """An ``invoke`` SigV4 access key in the benchmark control plane's own store and keyring
    (the same files the server reads)."""
    from orchestrator.api.aws.credentials import AccessKeys
    from orchestrator.objects import LocalKeyring
    from orchestrator.settings import Settings
    from orchestrator.store import StateStore

    settings = Settings(home=root / "home", config_dir=root / "config")
    store = StateStore(settings.resolved_database_url)
    try:
        keys = AccessKeys(store, LocalKeyring(settings.keyring_path))
        record, secret = keys.create(name="bench", role="invoke", now=datetime.now(UTC))
    finally:
        store.close()
    return record.access_key_id, secret


def signed_pool(
    url: str, body: bytes, content_type: str, akid: str, secret: str, count: int
) -> list[dict[str, str]]:
    """``count`` requests signed by botocore as sagemaker-runtime signs, a second apart."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.compat import get_current_datetime
    from botocore.credentials import Credentials

    pool = []
    signer = SigV4Auth(Credentials(akid, secret), "sagemaker", REGION)
    now = get_current_datetime()
    for i in range(count):
        request = AWSRequest(
            method="POST", url=url, data=body,
            headers={"Content-Type": content_type, "Accept": "application/json"},
        )  # fmt: skip
        # botocore signs with the time it reads in add_auth: a second apart for each.
        stamp = now - timedelta(seconds=i)
        with mock.patch("botocore.auth.get_current_datetime", return_value=stamp):
            signer.add_auth(request)
        pool.append({k: v for k, v in request.headers.items() if k != "Content-Type"})
    return pool


def write_pool(path: Path, pool: list[dict[str, str]]) -> None:
    path.write_text(
        "".join("\t".join(f"{k}: {v}" for k, v in headers.items()) + "\n" for headers in pool)
    )


def wrk_pool(target: Target, headers_file: Path, connections: int, seconds: float) -> Run:
    """One wrk run sending the pool in ``headers_file`` in turn; CPU of the server's tree."""
    body_file = BENCH / "body-sigv4-cost.bin"
    body_file.write_bytes(target.body)
    cmd = [
        "taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}",
        f"-d{max(1, round(seconds))}s", "--timeout", "10s", "-s", str(LUA),
        target.url(target.path), "--", str(body_file), target.content_type, str(headers_file),
    ]  # fmt: skip
    pid = PIDS[target.server_of or target.name]
    cpu_before = cpu_seconds(pid)
    started = time.time()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    ended = time.time()
    cpu = cpu_seconds(pid) - cpu_before
    line = next((x for x in done.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if done.returncode != 0 or line is None:
        raise SystemExit(f"error: wrk failed ({done.returncode}): {done.stdout}\n{done.stderr}")
    figures = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    requests = int(figures["requests"])
    run = WrkRun(
        rps=requests / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
        errors=errors,
        started=started,
        ended=ended,
    )
    return Run(run, cpu / max(1, requests) * 1e6, requests)


def check_boto3(target: Target, akid: str, secret: str, expected: list[object]) -> None:
    """boto3's sagemaker-runtime gets the model's own prediction through this server."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "sagemaker-runtime", endpoint_url=target.url(""), region_name=REGION,
        aws_access_key_id=akid, aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )  # fmt: skip
    for _ in range(20):
        answer = client.invoke_endpoint(
            EndpointName=ENDPOINT, Body=target.body, ContentType=target.content_type,
            Accept="application/json",
        )  # fmt: skip
        got = v1_predictions(json.loads(answer["Body"].read()))
        if got != expected or answer["InvokedProductionVariant"] != "main":
            raise SystemExit(f"error: boto3 got {got} from {answer}, expected {expected}")


def in_process(body: bytes, requests: int, rounds: int) -> dict[str, float]:
    """us per request of the fast path alone (see the module docstring), best of ``rounds``
    passes of ``requests`` each, per mode; both modes' keys cached, as in a steady state."""
    import asyncio

    from uvicorn.config import Config
    from uvicorn.server import ServerState

    from orchestrator import sigv4
    from orchestrator.access import Principal
    from orchestrator.controller.plan.types import VariantRoute
    from orchestrator.controller.routing import EndpointRoute, RoutingTable
    from orchestrator.dataplane.fastpath import protocol_for
    from orchestrator.dataplane.front import DataPlaneFront
    from orchestrator.dataplane.plane import DataPlane, DataPlaneSettings
    from orchestrator.dataplane.pool import ReplicaAnswer
    from orchestrator.dataplane.recorder import LocalSink
    from orchestrator.dataplane.router import Served

    akid, secret, api_key = "AKIAEXAMPLEEXAMPLE00", "s3cr3t", "orch_0123456789ab_secret"
    invoker = Principal(akid, "bench", "invoke")
    routes = RoutingTable()
    variant = VariantRoute("main", 1.0, ("http://127.0.0.1:9",), config="c")
    routes.replace_all([EndpointRoute(ENDPOINT, False, (variant,))])
    plane = DataPlane(
        routes=routes,
        key_checker=lambda _key: invoker,
        signing_key_source=lambda a, d, r, s: (sigv4.signing_key(secret, d, r, s), invoker),
        endpoint_status=lambda _name: None,
        sink=LocalSink(None),
        settings=DataPlaneSettings(6 << 20, 60.0, 64),
    )
    served = Served(ReplicaAnswer(200, b"application/json", b"[0]", None), variant, 100.0)

    async def invoke(*_args: object, **_kwargs: object) -> Served:
        return served

    plane.router.invoke = invoke  # type: ignore[method-assign]
    plane.router.answered = lambda *_args: None  # type: ignore[method-assign]
    front = DataPlaneFront(lambda *_args: None, plane)  # type: ignore[arg-type,return-value]
    host, path = "127.0.0.1:8080", f"/endpoints/{ENDPOINT}/invocations"
    signed = signed_pool(f"http://{host}{path}", body, "application/json", akid, secret, 1)[0]
    modes = {"bearer": {"Authorization": f"Bearer {api_key}"}, "SigV4": signed}
    raw = {}
    for mode, auth in modes.items():
        extra = {"Accept": "application/json", **auth}
        head = f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        head += f"Content-Length: {len(body)}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in extra.items()
        )
        raw[mode] = head.encode() + b"\r\n" + body

    class Transport(asyncio.Transport):
        def __init__(self) -> None:
            super().__init__()
            self.last = b""
            self.written = asyncio.Event()

        def write(self, data: bytes | bytearray | memoryview) -> None:
            self.last = bytes(data)
            self.written.set()

        def is_closing(self) -> bool:
            return False

        def get_extra_info(self, name: str, default: object = None) -> object:
            return {"peername": ("127.0.0.1", 1), "sockname": ("127.0.0.1", 8080)}.get(name)

        def pause_reading(self) -> None: ...

        def resume_reading(self) -> None: ...

    async def run() -> dict[str, float]:
        gc.collect()
        gc.freeze()  # as ``orch server`` does before serving (orchestrator.api.server)
        config = Config(app=front, lifespan="off", log_level="warning", access_log=False)
        config.load()
        protocol = protocol_for(front)(config=config, server_state=ServerState(), app_state={})
        transport = Transport()
        protocol.connection_made(transport)
        best: dict[str, float] = {}
        for _ in range(rounds):
            for mode, data in raw.items():
                started = time.perf_counter()
                for _ in range(requests):
                    transport.written.clear()
                    protocol.data_received(data)
                    await transport.written.wait()
                took = (time.perf_counter() - started) / requests * 1e6
                if not transport.last.startswith(b"HTTP/1.1 200"):
                    raise SystemExit(f"error: in process, {mode} answered {transport.last!r}")
                best[mode] = min(best.get(mode, took), took)
        return best

    return asyncio.run(run())


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 x 3 s per point")
    parser.add_argument("--runs", type=int, default=None, help="timed runs per point (5)")
    parser.add_argument("--seconds", type=float, default=None, help="seconds per run (10)")
    parser.add_argument("--warmup", type=float, default=None, help="warm-up seconds (3)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument(
        "--wait-quiet", type=float, default=None, metavar="LOAD",
        help="first wait (up to 20 min) until the 1-minute load is under LOAD",
    )  # fmt: skip
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    runs = args.runs if args.runs is not None else (1 if args.quick else 5)
    seconds = args.seconds if args.seconds is not None else (3.0 if args.quick else 10.0)
    warmup = args.warmup if args.warmup is not None else (1.0 if args.quick else 3.0)
    for name, value in (("--runs", runs), ("--seconds", seconds)):
        if value <= 0:
            raise SystemExit(f"error: --{name.lstrip('-')} must be positive, got {value}")
    if any(c < 1 for c in args.concurrency):
        raise SystemExit(f"error: --concurrency values must be >= 1, got {args.concurrency}")
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            raise SystemExit(f"error: {tool} not found; run: bash benchmarks/serving/setup.sh")
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= os.sched_getaffinity(0):
        raise SystemExit(f"error: needs CPUs {SERVER_CPU} and {LOAD_CPU} (server, wrk)")
    if args.wait_quiet is not None:
        out(f"waiting for a 1-minute load under {args.wait_quiet} ...")
        out(f"load {wait_quiet(args.wait_quiet, 1200):.2f}")

    model_dir = BENCH / "models" / "logreg"
    rows, predictions = train(model_dir)
    body = json.dumps(rows[:1]).encode()
    expected = predictions[:1]
    bearer = control_plane(model_dir, body, v1_predictions)
    out(f"machine: {machine()}")
    alone = in_process(body, 2000 if args.quick else 20000, 3 if args.quick else 7)
    out()
    out("The fast path alone, in process (stub router), us per request, best of the passes:")
    out()
    out("| bearer | SigV4 | SigV4 - bearer |")
    out("|---:|---:|---:|")
    out(
        f"| {alone['bearer']:.1f} | {alone['SigV4']:.1f} | {alone['SigV4'] - alone['bearer']:+.1f} |"
    )
    out()
    out(
        f"model: LogisticRegression, breast-cancer, 1 row x 30 features; {runs} x {seconds:g} s "
        f"per point after {warmup:g} s warm-up, median; a pool of {POOL} signed requests"
    )
    files = {"bearer": BENCH / "headers-bearer.txt", "SigV4": BENCH / "headers-sigv4.txt"}
    results: dict[tuple[str, int], list[Run]] = {}
    overheads: dict[tuple[str, int], list[float]] = {}
    with running(bearer) as server:
        akid, secret = access_key(BENCH / "control-plane")
        verify(server, expected)
        check_boto3(server, akid, secret, expected)
        out(f"control plane: up on :{server.port}; bearer and boto3 (SigV4) answer {expected}")
        bearer_headers = {"Accept": "application/json", **server.headers}  # as SigV4's pool
        write_pool(files["bearer"], [bearer_headers])
        url = server.url(server.path)

        def timed(mode: str, conc: int, length: float) -> Run:
            if mode == "SigV4":  # fresh signatures: valid for 5 minutes, a run takes seconds
                pool = signed_pool(url, body, server.content_type, akid, secret, POOL)
                write_pool(files[mode], pool)
            return wrk_pool(server, files[mode], conc, length)

        for conc in args.concurrency:
            for mode in files:
                timed(mode, conc, warmup)
        for r in range(runs):
            for conc in args.concurrency:
                for mode in files:
                    results.setdefault((mode, conc), []).append(timed(mode, conc, seconds))
            out(f"round {r + 1}/{runs} done")
        verify(server, expected)
        check_boto3(server, akid, secret, expected)
        for key, done in results.items():
            overheads[key] = [p50 for p50, _ in overhead(server, [d.wrk for d in done])]
    report(results, overheads, args.concurrency)


def report(
    results: dict[tuple[str, int], list[Run]],
    overheads: dict[tuple[str, int], list[float]],
    concurrencies: list[int],
) -> None:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    out()
    out(
        "| auth | concurrency | req/s | req/s of each run | p50 (ms) | p99 (ms) "
        "| OverheadLatency p50 (ms) | CPU per request (us) | errors |"
    )
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for conc in concurrencies:
        for mode in ("bearer", "SigV4"):
            done = results[(mode, conc)]
            out(
                f"| {mode} | {conc} | {med([d.wrk.rps for d in done]):.0f} "
                f"| {' / '.join(f'{d.wrk.rps:.0f}' for d in done)} "
                f"| {med([d.wrk.p50_ms for d in done]):.3f} "
                f"| {med([d.wrk.p99_ms for d in done]):.3f} "
                f"| {med(overheads[(mode, conc)]):.3f} "
                f"| {med([d.cpu_us for d in done]):.0f} "
                f"| {sum(d.wrk.errors for d in done)} |"
            )
    out()
    out("| concurrency | SigV4 - bearer: p50 (ms) | OverheadLatency p50 (ms) | CPU per request (us) "
        "| req/s |")  # fmt: skip
    out("|---:|---:|---:|---:|---:|")
    verdicts = []
    for conc in concurrencies:
        b, s = results[("bearer", conc)], results[("SigV4", conc)]
        d_p50 = med([d.wrk.p50_ms for d in s]) - med([d.wrk.p50_ms for d in b])
        d_over = med(overheads[("SigV4", conc)]) - med(overheads[("bearer", conc)])
        d_cpu = med([d.cpu_us for d in s]) - med([d.cpu_us for d in b])
        ratio = med([d.wrk.rps for d in s]) / med([d.wrk.rps for d in b])
        out(f"| {conc} | {d_p50:+.3f} | {d_over:+.3f} | {d_cpu:+.0f} | {ratio:.2f}x |")
        if conc == 1:
            verdicts.append((f"SigV4 p50 <= bearer p50 + {GOAL_MS} ms at concurrency 1",
                             d_p50 <= GOAL_MS))  # fmt: skip
            verdicts.append(
                (f"SigV4 OverheadLatency p50 <= bearer's + {GOAL_MS} ms at concurrency 1",
                 d_over <= GOAL_MS)
            )  # fmt: skip
    if any(d.wrk.errors for done in results.values() for d in done):
        out("\nWARNING: some runs had errors (non-2xx or socket errors); see the errors column")
    out()
    for goal, ok in verdicts:
        out(f"- goal {goal}: {met(ok)}")


if __name__ == "__main__":
    main()
