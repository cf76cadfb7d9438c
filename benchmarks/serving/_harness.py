"""Shared parts of the serving benchmarks: servers pinned to a core, a correctness check, wrk.

Each server runs as ``taskset -c 0 ...`` in its own session (so stopping it stops every process
it started; processes it starts in sessions of their own, like a control plane's replicas, are
on CPU 0 too and go by the target's ``cleanup``); wrk runs as ``taskset -c 1 wrk -t1 -cN``
with ``post.lua``, which POSTs one fixed body (with the target's ``Authorization`` header, if
any) and prints the run's figures as a JSON line. A target may share another's server
(``server_of``: the same server, another body), and may ``prepare`` its server once it is up
(a control plane: deploy the endpoint, make a key). Before a server is timed, ``verify`` sends
the same body and checks every answer is 200 with the expected prediction, so that a server
answering errors fast cannot win; wrk's own error counts (non-2xx, socket errors) are kept
with each run and printed.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
BENCH = Path(os.environ.get("BENCH_DIR", ROOT / ".bench"))
LUA = HERE / "post.lua"
SERVER_CPU = "0"
LOAD_CPU = "1"
# The pid of each running target's server (its session leader), by target name.
PIDS: dict[str, int] = {}
# One BLAS/OpenMP thread in every server, ours and the peers alike: each has one core.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@dataclass(frozen=True)
class Target:
    """One server to measure: how to start it, where it is ready, what to POST, how to read it."""

    name: str
    argv: list[str]
    port: int
    health_path: str
    path: str
    body: bytes
    content_type: str
    read_predictions: Callable[[dict[str, object]], list[object]]
    cwd: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    # Sent with every request; ``prepare`` may fill it in (a key made once the server is up).
    headers: dict[str, str] = field(default_factory=dict)
    expected: list[object] | None = None  # this target's answer, when not the run's own
    prepare: Callable[[Target], None] | None = None
    cleanup: Callable[[], None] | None = None
    server_of: str | None = None  # the name of the target whose server this one uses

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@dataclass(frozen=True)
class WrkRun:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    started: float = 0.0  # epoch seconds
    ended: float = 0.0


@dataclass(frozen=True)
class Point:
    """The median of several wrk runs of one server at one concurrency."""

    runs: list[WrkRun]

    @property
    def rps(self) -> float:
        return statistics.median(r.rps for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def spread(self) -> str:
        """Each run's requests/s, in the order they ran."""
        return " / ".join(f"{r.rps:.0f}" for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_tools() -> None:
    """Exit naming the fix when wrk, taskset, two CPUs or a peer virtualenv is missing."""
    for tool in ("wrk", "taskset", "nginx"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            raise SystemExit(f"error: {tool} not found; run: bash benchmarks/serving/setup.sh")
    cpus = os.sched_getaffinity(0)
    if not {int(SERVER_CPU), int(LOAD_CPU)} <= cpus:
        raise SystemExit(
            f"error: the benchmark pins servers to CPU {SERVER_CPU} and wrk to CPU {LOAD_CPU}, "
            f"but this process may only use CPUs {sorted(cpus)}"
        )


def venv_python(peer: str) -> Path:
    python = BENCH / f"venv-{peer}" / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"error: no {peer} virtualenv at {python.parent.parent}; "
            "run: bash benchmarks/serving/setup.sh"
        )
    return python


def version_of(python: Path, package: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({package!r}))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


def machine() -> str:
    model = "?"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores, {model}, {platform.python_version()}, load avg {load}"


@contextmanager
def running(target: Target, *, start_timeout: float = 180.0) -> Iterator[Target]:
    """Start ``target`` pinned to the server CPU, wait until its health path answers 200."""
    logs = BENCH / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"{target.name.replace(' ', '_').replace('/', '_')}.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "MLSERVER_"))}
    env.update(THREAD_ENV)
    env.update(target.env)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, *target.argv],
            cwd=target.cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    PIDS[target.name] = proc.pid
    try:
        deadline = time.monotonic() + start_timeout
        while not _answers_200(target.url(target.health_path)):
            if proc.poll() is not None:
                raise SystemExit(
                    f"error: {target.name} exited with {proc.returncode} while starting; "
                    f"its log ({log_path}):\n{_tail(log_path)}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(
                    f"error: {target.name} did not answer {target.health_path} within "
                    f"{start_timeout:g} s; its log ({log_path}):\n{_tail(log_path)}"
                )
            time.sleep(0.2)
        if target.prepare is not None:
            target.prepare(target)
        yield target
    finally:
        _stop(proc)
        if target.cleanup is not None:
            target.cleanup()


def verify(target: Target, expected: list[object], *, count: int = 20) -> None:
    """POST the benchmark body ``count`` times; exit unless each is 200 with ``expected``
    (the target's own ``expected`` when it has one)."""
    if target.expected is not None:
        expected = target.expected
    for _ in range(count):
        request = urllib.request.Request(
            target.url(target.path),
            data=target.body,
            headers={"Content-Type": target.content_type, **target.headers},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        if status != 200:
            raise SystemExit(
                f"error: {target.name} answered {status} to {target.path}: {raw[:500]!r}"
            )
        try:
            got = target.read_predictions(json.loads(raw))
        except (ValueError, KeyError, IndexError, TypeError) as e:
            raise SystemExit(
                f"error: {target.name}: cannot read predictions from {raw[:500]!r} ({e})"
            ) from e
        if got != expected:
            raise SystemExit(
                f"error: {target.name} predicted {got}, expected {expected} (body {raw[:300]!r})"
            )


def wrk(target: Target, connections: int, seconds: float) -> WrkRun:
    """One wrk run (one thread, ``connections`` connections) pinned to the load CPU."""
    body_file = BENCH / f"body-{target.name.replace(' ', '_').replace('/', '_')}.bin"
    body_file.write_bytes(target.body)
    cmd = [
        "taskset",
        "-c",
        LOAD_CPU,
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        target.url(target.path),
        "--",
        str(body_file),
        target.content_type,
        target.headers.get("Authorization", ""),
    ]
    started = time.time()
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=seconds + 60)
    ended = time.time()
    line = next((x for x in out.stdout.splitlines() if x.startswith("WRKJSON ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"error: wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    figures = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkRun(
        rps=figures["requests"] / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1e3,
        p99_ms=figures["p99_us"] / 1e3,
        errors=errors,
        started=started,
        ended=ended,
    )


def measure(target: Target, connections: int, *, warmup: float, runs: int, seconds: float) -> Point:
    if warmup > 0:
        wrk(target, connections, warmup)
    return Point([wrk(target, connections, seconds) for _ in range(runs)])


def interleaved(
    targets: list[Target],
    concurrencies: list[int],
    expected: list[object],
    *,
    runs: int,
    warmup: float,
    seconds: float,
    announce: bool = False,
    before_stop: Callable[[dict[tuple[str, int], Point]], None] | None = None,
) -> dict[tuple[str, int], Point]:
    """Start every target, check its answers, warm each up, then time ``runs`` rounds in which
    every (concurrency, target) gets one run in turn (so a slow spell of the machine hits all
    servers alike), and check the answers again. The median point per (target, concurrency).
    ``before_stop`` sees the points while the servers still run (to ask them for figures)."""
    results: dict[tuple[str, int], list[WrkRun]] = {}
    with ExitStack() as stack:
        for target in targets:
            if target.server_of is None:
                stack.enter_context(running(target))
        for target in targets:
            verify(target, expected)
            if announce:
                answer = target.expected if target.expected is not None else expected
                shown = answer if len(answer) <= 4 else f"{len(answer)} predictions"
                out(f"{target.name}: up on :{target.port}, answers 200 with {shown}")
        for conc in concurrencies:
            for target in targets:
                measure(target, conc, warmup=warmup, runs=0, seconds=seconds)
        for r in range(runs):
            for conc in concurrencies:
                for target in targets:
                    point = measure(target, conc, warmup=0, runs=1, seconds=seconds)
                    results.setdefault((target.name, conc), []).extend(point.runs)
            out(f"round {r + 1}/{runs} done")
        for target in targets:
            verify(target, expected)
        points = {key: Point(done) for key, done in results.items()}
        if before_stop is not None:
            before_stop(points)
    return points


def print_points(
    points: dict[tuple[str, int], Point], targets: list[Target], concurrencies: list[int]
) -> None:
    """The table of every point: req/s (median and each run), p50, p99, errors."""
    out()
    out("| server | concurrency | req/s | req/s of each run | p50 (ms) | p99 (ms) | errors |")
    out("|---|---:|---:|---:|---:|---:|---:|")
    for conc in concurrencies:
        for target in targets:
            p = points[(target.name, conc)]
            out(
                f"| {target.name} | {conc} | {p.rps:.0f} | {p.spread} "
                f"| {p.p50_ms:.2f} | {p.p99_ms:.2f} "
                f"| {p.errors} |"
            )


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    # Children that outlived their parent (worker processes) are in the same session.
    with suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def _tail(path: Path, lines: int = 30) -> str:
    with suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and every process below it, so far."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    todo = [pid]
    while todo:
        p = todo.pop()
        with suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
            for task in Path(f"/proc/{p}/task").iterdir():
                with suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return total


def fmt_ratio(x: float) -> str:
    return f"{x:.2f}x"


def met(ok: bool) -> str:
    return "met" if ok else "**NOT met**"


def out(line: str = "") -> None:
    print(line, flush=True)


__all__ = [
    "BENCH",
    "HERE",
    "PIDS",
    "ROOT",
    "Point",
    "Target",
    "WrkRun",
    "cpu_seconds",
    "fmt_ratio",
    "free_port",
    "machine",
    "measure",
    "met",
    "out",
    "require_tools",
    "running",
    "venv_python",
    "verify",
    "version_of",
    "wrk",
]
