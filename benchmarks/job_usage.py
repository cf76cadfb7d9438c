"""What sampling a running job's resource use costs the supervisor (``training.usage``).

Per sample of one host: the process tree from ``/proc`` (a parent with ``--children``
children, found by one scan of ``/proc``: the cost grows with the host's process count, which
is printed), the disk under an ``/opt/ml`` of ``--files`` files (walked at most every interval,
and never more than 5% of the time), the JSON line appended; and a Docker container's stats
(``--docker``: one engine round trip). CPU is the supervisor's own (``time.process_time``), so
at the default 5 s interval the share of a core is ``cpu per sample / 5 s``. And the control
plane's side: reading an hour of samples back as series (``JobMetrics.usage``).

    python benchmarks/job_usage.py [--samples 200] [--children 4] [--files 2000] [--docker]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.training.usage import (
    DiskProbe,
    HostSampler,
    Sizes,
    TreeProbe,
    UsageFile,
    UsageSampler,
    bytes_under,
    descendants,
)
from orchestrator.training.usageseries import UsageParser

SLEEPER = "import time\ntime.sleep(600)\n"


def per_sample(fn, n: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    """(median CPU us, median wall us) of one call."""
    cpu, wall = [], []
    for _ in range(n):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return statistics.median(cpu) * 1e6, statistics.median(wall) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--children", type=int, default=4)
    ap.add_argument("--files", type=int, default=2000)
    ap.add_argument("--docker", action="store_true")
    args = ap.parse_args()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        ml = Path(tmp) / "ml"
        for i in range(args.files):
            d = ml / "input" / "data" / "train" / f"{i % 20}"
            d.mkdir(parents=True, exist_ok=True)
            (d / f"part-{i}.csv").write_bytes(b"x" * 4096)
        tree = None
        try:
            # The user's process with its children, as a training script with data loaders.
            tree = subprocess.Popen(
                [sys.executable, "-c",
                 "import subprocess, sys, time\n"
                 f"ps = [subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]) for _ in range({args.children})]\n"
                 "time.sleep(600)\n"],
            )  # fmt: skip
            time.sleep(1.0)
            probe = TreeProbe(tree.pid)
            rows.append(("process tree from /proc", *per_sample(probe.read, args.samples)))
            rows.append(
                ("disk walk of /opt/ml", *per_sample(lambda: bytes_under(ml), args.samples // 4))
            )
            sizes = Sizes(8 << 30, 30 << 30)
            out = UsageFile(Path(tmp) / "job.usage.jsonl")
            sampler = UsageSampler(
                out,
                1,
                {"algo-1": probe},
                lambda p: HostSampler(p, sizes, disk=DiskProbe(ml, interval=5.0)),
                interval=5.0,
            )
            rows.append(
                ("one sample, one host (tree + disk + line)", *per_sample(sampler.sample_once, args.samples))
            )  # fmt: skip
            if args.docker:
                rows.append(docker_row(args.samples))
            n_proc = sum(1 for e in os.listdir("/proc") if e.isdigit())
            # The control plane's side: an hour at 5 s, 4 hosts, read back from 0.
            lines = Path(tmp) / "hour.jsonl"
            hour = UsageFile(lines)
            for i in range(720):
                for h in range(4):
                    hour.write(1_700_000_000_000 + i * 5000, f"algo-{h + 1}", 1, {"CPUUtilization": 50.0, "MemoryUtilization": 10.0, "DiskUtilization": 1.0})  # fmt: skip
            hour.close()
            data = lines.read_bytes()

            def read_back() -> None:
                UsageParser().feed(data)

            rows.append(
                ("read back 1 h of 4 hosts at 5 s (2,880 lines)", *per_sample(read_back, 20))
            )
            sampler.out.close()
        finally:
            if tree is not None:
                for pid in reversed(descendants(tree.pid)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, 9)
                tree.wait()
    print(f"processes on this host: {n_proc}; tree: 1 + {args.children}; files: {args.files}")
    print("| what | CPU per call | wall per call | share of a core at 5 s |")
    print("|---|---|---|---|")
    for what, cpu, wall in rows:
        share = "-" if what.startswith("read back") else f"{cpu / 5e6 * 100:.3f}%"
        print(f"| {what} | {cpu:.0f} us | {wall:.0f} us | {share} |")


def docker_row(n: int) -> tuple[str, float, float]:
    import docker

    from orchestrator.backends.docker.stats import StatsProbe
    from orchestrator.settings import DockerSettings

    client = docker.from_env()
    c = client.containers.run(DockerSettings().training_image, ["sleep", "600"], detach=True)
    try:
        probe = StatsProbe(c)
        cpu, wall = per_sample(probe.read, max(10, n // 10))
    finally:
        c.remove(force=True)
        client.close()
    return ("Docker container stats (one-shot)", cpu, wall)


if __name__ == "__main__":
    main()
