"""Submit through REST -> ``batch/v1`` Job created, on the cluster API against the emulator.

The control-plane API runs in-process as on a cluster (``ORCH_DESIRED_STATE=kubernetes``,
API keys from a file, auth on) in front of the Kubernetes API emulator of the operator
tests; the operator runs its loop (``Operator.run``) in a thread. Each CreateTrainingJob goes
through ``orchestrator.client.Client``; its latency runs from just before the call to the
moment this benchmark's own watch on Jobs (not a poll) sees the Job appear. One submitter at
a time, then ``--concurrency`` at once, each run on a fresh emulator: it starts from an empty
namespace and ends with every job InProgress (nothing plays the Job controller).

Watch-driven: the operator's watches on and its resync interval long (``--resync``). A
running job's plan still asks for a look within ``RUNNING_RESYNC`` (1 s), so the loop also
passes once a second while jobs run; the table counts what ended each of its waits (a watch
event or that timer). A timer that fires once a second gives p50 >= 0.5 s, so a faster
result is the watch's. Poll-driven baseline: watches off, the default resync interval, over
``--baseline-jobs`` (fewer: each takes a second or more). Goal: watch-driven p50 <= 0.5 s.

    python benchmarks/kube_submit_latency.py [--jobs 200] [--baseline-jobs 100]
        [--concurrency 8] [--resync 60]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import queue
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, watch

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _kube import NS, Emulator, emulator_client, operator_settings
from _server import percentile

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.client import Client
from orchestrator.controller.plan.training import RUNNING_RESYNC
from orchestrator.controller.reconciler import Policies
from orchestrator.kube.objects import LABEL_MANAGED, LABEL_TRAINING_JOB
from orchestrator.kube.operator import Operator
from orchestrator.settings import ControllerSettings, Settings
from orchestrator.testing import ServerThread, training_job_spec

GOAL_P50 = 0.5
KEY_ID, SECRET = "b3nchb3nchb3", "a-benchmark-secret-long-enough-for-the-key-store"
KEY = f"orch_{KEY_ID}_{SECRET}"
SOURCE = "s3://orchestrator/code/sourcedir.tar.gz"
# Above --jobs: every create still counts the jobs in progress (the default path), none is refused.
QUOTA = 100_000


@dataclass
class Run:
    label: str
    latencies: list[float]
    woken: Counter[str]  # what ended each of the operator's waits between passes
    seconds: float


class CountedWake(threading.Event):
    """The operator loop's wake-up event, telling what ended each wait: a watch event (the
    event set) or the timer (the pass's requeue or the resync interval)."""

    def __init__(self) -> None:
        super().__init__()
        self.woken: Counter[str] = Counter()

    def wait(self, timeout: float | None = None) -> bool:
        woken = super().wait(timeout)
        self.woken["watch" if woken else "timer"] += 1
        return woken


class JobWatch:
    """When each training job's first Job was seen, from a watch on the managed Jobs."""

    def __init__(self, api: client.ApiClient) -> None:
        self.batch = client.BatchV1Api(api)
        self.seen: dict[str, float] = {}
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stream = watch.Watch().stream(  # type: ignore[no-untyped-call]
            self.batch.list_namespaced_job,
            NS,
            label_selector=f"{LABEL_MANAGED}=orchestrator",
            _request_timeout=(5, 3600),
        )
        with contextlib.suppress(Exception):  # the emulator going away ends the stream
            for event in stream:
                at = time.perf_counter()
                meta = event["object"].metadata
                name = (meta.labels or {}).get(LABEL_TRAINING_JOB)
                if name and event["type"] == "ADDED":
                    with self._cond:
                        self.seen.setdefault(name, at)
                        self._cond.notify_all()

    def wait(self, name: str, timeout: float) -> float:
        with self._cond:
            if not self._cond.wait_for(lambda: name in self.seen, timeout):
                raise SystemExit(f"no Job for {name} within {timeout} s")
            return self.seen[name]


def write_keys(path: Path) -> Path:
    secret_hash = hashlib.sha256(SECRET.encode()).hexdigest()
    key = {"KeyId": KEY_ID, "SecretHash": secret_hash, "Name": "bench", "Role": "admin"}
    path.write_text(json.dumps({"keys": [key]}))
    return path


@contextmanager
def cluster(watch_events: bool, resync: float) -> Iterator[tuple[str, JobWatch, CountedWake]]:
    """The emulator, the cluster API (its URL), the operator's loop and the Job watch."""
    emulator = Emulator()
    tmp = Path(tempfile.mkdtemp(prefix="orch-kube-bench-"))
    settings = Settings(
        home=tmp / "home",
        config_dir=tmp / "config",
        desired_state="kubernetes",
        api_keys_file=write_keys(tmp / "keys.json"),
        kube=operator_settings(),
        controller=ControllerSettings(max_concurrent_training_jobs=QUOTA),
    )
    try:
        with (
            emulator_client(emulator.url) as plane_api,
            emulator_client(emulator.url) as operator_api,
            emulator_client(emulator.url) as watch_api,
        ):
            operator = Operator(
                operator_api, settings.kube, policies=Policies(resync_seconds=resync)
            )
            wake = operator._wake = CountedWake()
            loop = threading.Thread(
                target=operator.run, kwargs={"watch_events": watch_events}, daemon=True
            )
            plane = build_control_plane(settings, kube_api=plane_api)
            with ServerThread(create_app(plane)) as server:
                loop.start()
                jobs = JobWatch(watch_api)
                time.sleep(0.5)  # the watches are open
                yield server.url, jobs, wake
                operator.stop()
                loop.join(30)
    finally:
        emulator.close()


def submit(c: Client, jobs: JobWatch, name: str) -> float:
    t0 = time.perf_counter()
    c.create_training_job(training_job_spec(name, source=SOURCE))
    return jobs.wait(name, timeout=60) - t0


def run(label: str, watch_events: bool, resync: float, n: int, concurrency: int) -> Run:
    with cluster(watch_events, resync) as (url, jobs, wake):
        with Client(url, KEY) as c:
            c.upload_bytes(b"print('hi')\n", SOURCE)
        names: queue.Queue[str] = queue.Queue()
        for i in range(n):
            names.put(f"submit-{i:04d}")
        latencies: list[float] = []
        lock = threading.Lock()

        def submitter() -> None:
            with Client(url, KEY) as c:
                while True:
                    try:
                        name = names.get_nowait()
                    except queue.Empty:
                        return
                    latency = submit(c, jobs, name)
                    with lock:
                        latencies.append(latency)

        wake.woken.clear()
        t0 = time.perf_counter()
        threads = [threading.Thread(target=submitter) for _ in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return Run(label, latencies, Counter(wake.woken), time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--baseline-jobs", type=int, default=100, help="poll-driven rows")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--resync", type=float, default=60.0, help="watch-driven rows")
    parser.add_argument("--modes", nargs="+", choices=["watch", "poll"], default=["watch", "poll"])
    args = parser.parse_args()
    default_resync = ControllerSettings().resync_seconds
    started = time.perf_counter()
    runs: list[Run] = []
    modes = {
        "watch": ("watch-driven", True, args.resync, args.jobs),
        "poll": ("poll-driven", False, default_resync, args.baseline_jobs),
    }
    for mode in args.modes:
        driven, watching, resync, n = modes[mode]
        for conc in (1, args.concurrency):
            label = f"{driven}, resync {resync:g} s, {conc} at once"
            r = run(label, watching, resync, n, conc)
            print(f"{r.label}: {r.seconds:.0f} s", file=sys.stderr)
            runs.append(r)

    print(
        f"submit (REST) -> batch/v1 Job seen (a watch), seconds "
        f"(load {os.getloadavg()[0]:.2f}; running jobs ask to be looked at again "
        f"within {RUNNING_RESYNC:g} s)"
    )
    print(
        f"{'operator':<40} {'jobs':>4} {'p50':>6} {'p90':>6} {'p99':>6} {'max':>6} "
        f"{'woken by watch/timer':>20}"
    )
    for r in runs:
        xs = r.latencies
        woken = f"{r.woken['watch']}/{r.woken['timer']}"
        print(
            f"{r.label:<40} {len(xs):>4} {percentile(xs, 0.5):6.3f} {percentile(xs, 0.9):6.3f} "
            f"{percentile(xs, 0.99):6.3f} {max(xs):6.3f} {woken:>20}"
        )
    for r in runs:
        if r.label.startswith("watch-driven"):
            p50 = percentile(r.latencies, 0.5)
            verdict = "met" if p50 <= GOAL_P50 else "NOT met"
            print(f"goal p50 <= {GOAL_P50:.1f} s, {r.label}: {verdict} ({p50:.3f} s)")
    print(f"(run took {time.perf_counter() - started:.0f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
