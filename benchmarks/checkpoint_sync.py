"""What uploading checkpoints while training costs the training: step time with and without
the checkpoint sync running.

A stand-in training process (a subprocess, like the user's: a single-threaded numpy loop)
runs steps back to back and records when each starts and ends. Beside it, in this process
(the supervisor's place), ``training.checkpoints.Watcher`` uploads a checkpoint directory of
``--gib`` GiB in ``--files`` files to the encrypted file store in a temp directory, as the
supervisor does: its thread niced by ``UPLOADER_NICENESS`` at full speed and capped at
``--cap`` MiB/s (``rate``), and at nice 10 and 0, to compare; ``--share-cpu`` pins both to
one CPU (no core to spare: where niceness decides). Windows
without and with the upload alternate ``--rounds`` times, so load from elsewhere on a shared
machine falls on both; a step counts in a window when it lies wholly inside it. Then the cost
of one scan of an unchanged directory (the price of polling), per file.

    python benchmarks/checkpoint_sync.py [--gib 1] [--files 8] [--rounds 3] [--idle 6] [--cap 64]
        [--share-cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.objects import LocalKeyring, open_object_store
from orchestrator.training import checkpoints
from orchestrator.training.checkpoints import CheckpointSync, Watcher

TRAINER = """
import os, sys, time
import numpy as np
a = np.random.default_rng(0).random((256, 256))
out = open(sys.argv[1], "w", buffering=1)
parent = os.getppid()
while os.getppid() == parent:  # ends with the benchmark, however it ends
    t0 = time.monotonic()
    for _ in range(40):
        b = a @ a
    out.write("%f %f\\n" % (t0, time.monotonic()))
"""


def make_checkpoints(directory: Path, gib: float, files: int) -> int:
    directory.mkdir(parents=True)
    size = int(gib * (1 << 30)) // files
    block = os.urandom(16 << 20)  # incompressible, like weights
    for i in range(files):
        with open(directory / f"shard-{i:03d}.pt", "wb") as f:
            left = size
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
    return size * files


def upload_window(
    local: Path, store_root: Path, prefix: str, nice: int, rate: float | None
) -> tuple[float, float, float]:
    """One full upload of ``local`` by the product's watcher: (start, end) in monotonic time,
    and the CPU seconds this process spent (the uploader's: the main thread only polls)."""
    store = open_object_store(store_root.as_uri(), LocalKeyring(store_root.parent / "k.json"))
    checkpoints.UPLOADER_NICENESS = nice
    sync = CheckpointSync(local, prefix, lambda: store, rate=rate)
    total = len(sync.files())
    watcher = Watcher(sync, interval=0.05)
    cpu = time.process_time()
    start = time.monotonic()
    watcher.start()
    while len(sync.uploaded) < total:
        time.sleep(0.02)
    errors = watcher.finish()
    end = time.monotonic()
    cpu = time.process_time() - cpu
    assert not errors, errors
    for o in store.list(prefix + "/"):  # room for the next round
        store.delete(o.uri)
    return start, end, cpu


def steps_in(steps: list[tuple[float, float]], windows: list[tuple[float, float]]) -> list[float]:
    return [(e - s) * 1000 for s, e in steps if any(w0 <= s and e <= w1 for w0, w1 in windows)]


def scan_cost_us(root: Path, files: int = 10_000) -> float:
    local = root / "many"
    local.mkdir()
    for i in range(files):
        (local / f"f{i:05d}").write_bytes(b"x")
    sync = CheckpointSync(local, "s3://bench/many", lambda: None)  # type: ignore[arg-type,return-value]
    stamp = {rel: st for rel, (_, st) in sync.files().items()}
    sync.uploaded.update(stamp)  # everything uploaded already: a pass only stats
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        sync.sync()
        runs.append((time.perf_counter() - t0) / files * 1e6)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gib", type=float, default=1.0)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle", type=float, default=6.0, help="seconds of each window without")
    parser.add_argument("--cap", type=float, default=64.0, help="the capped uploader's MiB/s")
    parser.add_argument(
        "--share-cpu",
        action="store_true",
        help="pin the trainer and the uploader to one CPU (the worst case: no core to spare)",
    )
    args = parser.parse_args()
    if args.share_cpu:
        os.sched_setaffinity(0, {0})  # the trainer started below inherits it
    with tempfile.TemporaryDirectory(prefix="ckpt-bench-") as tmp:
        root = Path(tmp)
        local = root / "ml" / "checkpoints"
        size = make_checkpoints(local, args.gib, args.files)
        load_before = os.getloadavg()[0]
        log = root / "steps.txt"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        trainer = subprocess.Popen([sys.executable, "-c", TRAINER, str(log)], env=env)
        default = checkpoints.UPLOADER_NICENESS
        modes = {
            f"nice {default}": (default, None),
            f"nice {default}, {args.cap:g} MiB/s": (default, args.cap * (1 << 20)),
            "nice 10": (10, None),
            "not niced": (0, None),
        }
        cpu: dict[str, list[float]] = {m: [] for m in modes}
        windows: dict[str, list[tuple[float, float]]] = {m: [] for m in ["none", *modes]}
        try:
            time.sleep(2.0)  # warm up
            for r in range(args.rounds):
                for mode, (nice, rate) in modes.items():
                    t0 = time.monotonic()
                    time.sleep(args.idle)
                    windows["none"].append((t0, time.monotonic()))
                    w0, w1, used = upload_window(
                        local, root / "store", f"s3://bench/r{r}", nice, rate
                    )
                    windows[mode].append((w0, w1))
                    cpu[mode].append(used)
        finally:
            trainer.kill()
            trainer.wait()
            checkpoints.UPLOADER_NICENESS = default
        steps = [
            (float(a), float(b))
            for a, b in (line.split() for line in log.read_text().splitlines() if " " in line)
        ]
        print(
            f"checkpoint: {size / (1 << 30):.2f} GiB in {args.files} files; {args.rounds} "
            f"rounds; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after, "
            f"on {os.cpu_count()} CPUs"
            + ("; trainer and uploader pinned to one CPU" if args.share_cpu else "")
        )
        print(
            f"{'uploader':<20} {'steps':>6} {'median ms':>10} {'mean ms':>8} {'p90 ms':>7} "
            f"{'slowdown':>9} {'paired':>7} {'upload s':>9} {'MiB/s':>6} {'CPU s/GiB':>10}"
        )
        base = steps_in(steps, windows["none"])
        for mode, spans in windows.items():
            times = steps_in(steps, spans)
            if not times:
                print(f"{mode:<20} no step lay wholly inside a window")
                continue
            mean = statistics.fmean(times)
            p90 = statistics.quantiles(times, n=10)[-1] if len(times) > 1 else times[0]
            slowdown = mean / statistics.fmean(base) - 1
            upload, rate, paired, per_gib = "-", "-", "-", "-"
            if mode != "none":
                secs = statistics.fmean(w1 - w0 for w0, w1 in spans)
                upload, rate = f"{secs:.2f}", f"{size / secs / (1 << 20):.0f}"
                per_gib = f"{statistics.fmean(cpu[mode]) / (size / (1 << 30)):.2f}"
                # Each upload window against the idle window just before it (same load).
                order = list(modes).index(mode)
                ratios = []
                for r, span in enumerate(spans):
                    before = steps_in(steps, [windows["none"][r * len(modes) + order]])
                    during = steps_in(steps, [span])
                    if before and during:
                        ratios.append(statistics.fmean(during) / statistics.fmean(before) - 1)
                paired = f"{statistics.median(ratios):+.1%}" if ratios else "-"
            print(
                f"{mode:<20} {len(times):>6} {statistics.median(times):>10.1f} {mean:>8.1f} "
                f"{p90:>7.1f} {slowdown:>+9.1%} {paired:>7} {upload:>9} {rate:>6} {per_gib:>10}"
            )
        print(f"scan of an unchanged directory: {scan_cost_us(root):.1f} us per file")


if __name__ == "__main__":
    main()
