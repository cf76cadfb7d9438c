"""What the audit trail costs the management API under load: requests per second with the
trail on and off, in the same run.

Two `orch server`s (the fake backend, a real uvicorn, bearer auth on), one with
``ORCH_AUDIT__ENABLED=true`` and one with ``false``, each holding the same training job.
Load: ``--procs`` processes of ``--threads`` threads each, every thread an ``httpx.Client``
(keep-alive) sending DescribeTrainingJob and ListTrainingJobs GETs in turn for
``--seconds``. Rounds alternate off, on, off, on... (``--rounds`` each, after a warm-up), so
drift on a shared machine hits both; reports the median requests/s of each, their ratio,
and the median of each round's on/off ratio (the steadier figure on a loaded machine).
Goal: the trail costs at most 5%.

Then, in-process and without the network's noise, the CPU the trail spends per call: on the
request's path (the middleware around an ASGI app that answers at once, minus that app
alone) and in the writer thread (a record made, redacted, chained, serialised, and written
in batches of 1000 to an encrypted file store), against the server's own CPU per request
measured above (1 / median req/s with the trail off, an upper bound on a loaded machine).

    python benchmarks/audit.py [--seconds 5] [--rounds 3] [--procs 2] [--threads 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncio
import tempfile

import httpx

from benchmarks._server import control_plane
from orchestrator.api.auditing import AuditMiddleware
from orchestrator.audit import AuditTrail, Call, SigningKey
from orchestrator.objects import LocalKeyring, open_object_store

JOB = "bench-job"
PATHS = (f"/api/v1/training-jobs/{JOB}", "/api/v1/training-jobs?MaxResults=10")


def _load(url: str, key: str, threads: int, seconds: float) -> tuple[int, int]:
    """(answered, failed) by ``threads`` threads in ``seconds``."""
    counts = [0] * threads
    failures = [0] * threads
    stop = time.monotonic() + seconds

    def run(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            n = 0
            while time.monotonic() < stop:
                r = c.get(PATHS[n % 2])
                n += 1
                if r.status_code == 200:
                    counts[i] += 1
                else:
                    failures[i] += 1

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts), sum(failures)


def _round(pool: ProcessPoolExecutor, url: str, key: str, args: argparse.Namespace) -> float:
    futures = [pool.submit(_load, url, key, args.threads, args.seconds) for _ in range(args.procs)]
    answered = failed = 0
    for f in futures:
        a, b = f.result()
        answered += a
        failed += b
    if failed:
        raise SystemExit(f"{failed} requests failed against {url}")
    return answered / args.seconds


def _seed(url: str, key: str) -> None:
    doc = {"TrainingJobName": JOB, "AlgorithmSpecification": {"TrainingImage": "example/t:1"}}
    r = httpx.post(
        f"{url}/api/v1/training-jobs", json=doc, headers={"Authorization": f"Bearer {key}"}
    )
    r.raise_for_status()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--calls", type=int, default=20_000, help="in-process calls timed")
    args = parser.parse_args()
    with ExitStack() as stack:
        servers = {}
        for label, enabled in (("off", "false"), ("on", "true")):
            url, key, root = stack.enter_context(
                control_plane(
                    ORCH_BACKEND="fake",
                    ORCH_AUDIT__ENABLED=enabled,
                    # The load is one key far above the default per-key limit: off here.
                    ORCH_RATE_LIMITS__API_REQUESTS_PER_SECOND="0",
                )
            )
            _seed(url, key)
            servers[label] = (url, key, root)
        pool = stack.enter_context(ProcessPoolExecutor(args.procs))
        rates: dict[str, list[float]] = {"off": [], "on": []}
        for label in ("off", "on"):  # warm-up
            _round(pool, *servers[label][:2], argparse.Namespace(**{**vars(args), "seconds": 1}))
        for n in range(args.rounds):
            # Off then on, then on then off: a drift in the machine's load falls on both.
            for label in ("off", "on") if n % 2 == 0 else ("on", "off"):
                rates[label].append(_round(pool, *servers[label][:2], args))
        records = _recorded(servers["on"][:2])
    off, on = statistics.median(rates["off"]), statistics.median(rates["on"])
    print(
        f"{args.procs} processes x {args.threads} threads, {args.seconds:g} s x {args.rounds} rounds"
    )
    print(f"{'audit':<6} {'req/s (median)':>15} {'rounds':>30}")
    for label, value in (("off", off), ("on", on)):
        shown = ", ".join(f"{r:.0f}" for r in rates[label])
        print(f"{label:<6} {value:>15.0f} {shown:>30}")
    paired = statistics.median(a / b for a, b in zip(rates["on"], rates["off"], strict=True))
    print(f"on/off of the medians: {on / off:.3f} (cost {100 * (1 - on / off):.1f}%)")
    print(f"on/off, median of the rounds' pairs: {paired:.3f} (cost {100 * (1 - paired):.1f}%)")
    print("goal: cost <= 5%")
    print(f"records in the trail after the run: {records}")
    hot, writer = _per_call_us(args.calls)
    per_request = 1e6 / off
    print(f"per call, in-process: request path {hot:.1f} us, writer thread {writer:.1f} us; ")
    print(
        f"  against {per_request:.0f} us per request (trail off): "
        f"{100 * (hot + writer) / per_request:.2f}% of a request's time"
    )


def _per_call_us(calls: int) -> tuple[float, float]:
    root = Path(tempfile.mkdtemp(prefix="orch-bench-audit-"))
    store = open_object_store((root / "objects").as_uri(), LocalKeyring(root / "keyring.json"))
    trail = AuditTrail(store, SigningKey.load_or_create(root / "sign.key"), bucket="audit")
    trail.open()
    headers = [
        (b"host", b"127.0.0.1:8686"),
        (b"user-agent", b"python-httpx/0.28"),
        (b"authorization", b"Bearer orch_0123456789ab_" + b"x" * 43),
        (b"accept", b"*/*"),
    ]
    start_msg = {"type": "http.response.start", "status": 200, "headers": []}
    body_msg = {"type": "http.response.body", "body": b"{}"}

    async def app(scope: object, receive: object, send: object) -> None:
        await send(start_msg)  # type: ignore[operator]
        await send(body_msg)  # type: ignore[operator]

    async def sink(message: object) -> None:
        return None

    async def nothing() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    def scope() -> dict[str, object]:
        return {
            "type": "http", "method": "GET", "path": f"/api/v1/training-jobs/{JOB}",
            "query_string": b"", "headers": headers, "client": ("127.0.0.1", 5000),
        }  # fmt: skip

    wrapped = AuditMiddleware(app, trail)

    async def run(target: object) -> float:
        t = time.perf_counter()
        for _ in range(calls):
            await target(scope(), nothing, sink)  # type: ignore[operator]
        return (time.perf_counter() - t) / calls * 1e6

    bare = min(asyncio.run(run(app)) for _ in range(3))
    audited = min(asyncio.run(run(wrapped)) for _ in range(3))
    trail._queue = type(trail._queue)()  # drop the calls queued above
    call = Call(
        time=time.time(), method="GET", path=f"/api/v1/training-jobs/{JOB}", headers=headers,
        source="127.0.0.1", status=200, principal_name="bench", principal_key_id="0123456789ab",
        action="DescribeTrainingJob", resource=f"training-jobs/{JOB}", request_id="r",
    )  # fmt: skip
    t = time.perf_counter()
    for n in range(calls):
        trail.submit(call)
        if n % 1000 == 999:
            trail.flush()
    trail.flush()
    writer = (time.perf_counter() - t) / calls * 1e6
    return max(0.0, audited - bare), writer


def _recorded(server: tuple[str, str]) -> int:
    url, key = server
    r = httpx.post(
        f"{url}/api/v1/audit/verify", headers={"Authorization": f"Bearer {key}"}, timeout=600
    )
    r.raise_for_status()
    report = r.json()
    if not report["Ok"]:
        raise SystemExit(f"the trail does not verify: {report['FirstProblem']}")
    return int(report["Records"])


if __name__ == "__main__":
    main()
