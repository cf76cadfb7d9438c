"""The training queue: how fast the controller drains it, and what a pass costs as it grows.

1. Drain: N no-op jobs submitted at once through REST (auth on: an admin API key) to an
   in-process control plane on the fake backend (a job runs nothing; each completes the pass
   after it starts), with the default 5 job slots. Reported: the submit rate, job starts per
   second of controller CPU time (the reconciler's passes, ``time.process_time``), and the
   controller's CPU per job (admission, plan, launch, completion, status writes). The
   per-key rate limit is off here: this times submitting, not the limit.
2. Pass cost: one pass over Q queued jobs (slots all taken, so every job waits) for Q = 1,000
   and 10,000: it should grow linearly (the queue is one O(n log n) plan, no write per queued
   job).

    python benchmarks/training_queue.py [--jobs 1000] [--queued 1000,10000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator.settings import RateLimitSettings
from orchestrator.testing import local_control_plane, training_job_spec


def drain(jobs: int) -> dict[str, float]:
    unlimited = RateLimitSettings(api_requests_per_second=0)
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_control_plane(Path(tmp), rate_limits=unlimited) as cp,
    ):
        cp.client.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
        t0 = time.perf_counter()
        for i in range(jobs):
            cp.client.create_training_job(training_job_spec(f"job-{i:05d}"))
        submit = time.perf_counter() - t0
        cpu = 0.0
        passes = 0
        while len(cp.backend.launches) < jobs or cp.plane.store.list_active("TrainingJob"):
            for launch in list(cp.backend.launches):
                if cp.backend.observe_job(launch.name) and launch.name not in _done(cp):
                    cp.backend.complete(launch.name)
            c0 = time.process_time()
            cp.controller.run_pass()
            cpu += time.process_time() - c0
            passes += 1
        return {"submit_s": submit, "cpu_s": cpu, "passes": passes}


def _done(cp: Any) -> set[str]:
    seen: set[str] = getattr(cp, "_completed", set())
    for launch in cp.backend.launches:
        observed = cp.backend.observe_job(launch.name)
        if observed is not None and observed.state == "exited":
            seen.add(launch.name)
    cp._completed = seen
    return seen


def pass_cost(queued: int) -> float:
    """CPU seconds of one pass over ``queued`` waiting jobs (plus the 5 running)."""
    with tempfile.TemporaryDirectory() as tmp, local_control_plane(Path(tmp)) as cp:
        store, now = cp.plane.store, cp.plane.clock.now()
        spec = training_job_spec("x")
        for i in range(queued + 5):  # straight into the store: this times the pass, not REST
            name = f"job-{i:05d}"
            store.create(
                "TrainingJob", name, {**spec, "TrainingJobName": name},
                {"TrainingJobStatus": "InProgress"}, phase="InProgress", active=True, now=now,
            )  # fmt: skip
        cp.controller.run_pass()  # five start, the rest go Pending (one write each, once)
        cp.controller.run_pass()
        best = float("inf")
        for _ in range(3):
            c0 = time.process_time()
            cp.controller.run_pass()
            best = min(best, time.process_time() - c0)
        return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--queued", default="1000,10000")
    args = ap.parse_args()
    d = drain(args.jobs)
    print(f"Drain: {args.jobs} no-op jobs, fake backend, 5 slots, submitted through REST (auth on)")
    print(f"{'submit (jobs/s)':>18} {'controller CPU (s)':>19} {'starts/CPU s':>13} "
          f"{'CPU/job (ms)':>13} {'passes':>7}")  # fmt: skip
    print(f"{args.jobs / d['submit_s']:>18.0f} {d['cpu_s']:>19.2f} "
          f"{args.jobs / d['cpu_s']:>13.0f} {1000 * d['cpu_s'] / args.jobs:>13.2f} "
          f"{d['passes']:>7.0f}")  # fmt: skip
    print()
    print("Pass cost with Q queued jobs (CPU seconds of one pass, best of 3)")
    print(f"{'queued':>8} {'pass (s)':>9} {'per job (us)':>13}")
    for q in (int(x) for x in args.queued.split(",")):
        cost = pass_cost(q)
        print(f"{q:>8} {cost:>9.3f} {1e6 * cost / q:>13.1f}")


if __name__ == "__main__":
    main()
