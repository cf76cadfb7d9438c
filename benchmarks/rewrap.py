"""Master key re-wrap speed, and what it costs a concurrent reader.

Fills a file object store with ``--objects`` small objects (``--size`` bytes each: envelopes
written with ``envelope.encrypt_stream`` straight into the store's layout from a thread pool,
one ``sync`` at the end rather than two fsyncs per object, to fill quickly), then:

1. ``--before-s`` seconds of a reader alone: ``get_bytes`` of random objects in a loop
   (decrypt + verify), each read timed;
2. ``orch keys rotate-master``'s work (``MasterKeys.rotate``) and one full re-wrap pass
   (``Rewrapper.run_pass``, no rate limit, on this thread) while the reader goes on.

Prints objects per second of the pass and the reader's p50/p99 latency before vs during, and
the reader's failures (must be 0). Every re-wrapped object is written to a temp file, made
durable (one ``syncfs`` per batch of ``--batch``), renamed by compare-and-swap, its directory
fsynced before each checkpoint, as in the server.

    python benchmarks/rewrap.py [--objects 100000] [--size 1024] [--readers 1] [--dir TMPDIR]
"""

from __future__ import annotations

import argparse
import io
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from orchestrator.objects import FileObjectStore, LocalKeyring, envelope
from orchestrator.objects.rewrap import MasterKeys
from orchestrator.objects.store import new_version


class Reader:
    """Reads random objects in a loop; latencies are kept per phase."""

    def __init__(self, store: FileObjectStore, uris: list[str], seed: int) -> None:
        self.store, self.uris = store, uris
        self.rnd = random.Random(seed)
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": []}
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            uri = self.rnd.choice(self.uris)
            start = time.perf_counter()
            try:
                self.store.get_bytes(uri)
            except Exception as e:
                self.failures.append(f"{uri}: {e!r}")
                continue
            self.latencies[self.phase].append(time.perf_counter() - start)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024, help="plaintext bytes per object")
    parser.add_argument("--readers", type=int, default=1)
    parser.add_argument("--writers", type=int, default=8, help="threads filling the store")
    parser.add_argument("--workers", type=int, default=4, help="re-wrap batches in flight")
    parser.add_argument("--batch", type=int, default=16, help="objects per flush to disk")
    parser.add_argument("--before-s", type=float, default=5.0)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="orch-rewrap-bench-", dir=args.dir))
    try:
        keyring = LocalKeyring(work / "keys" / "keyring.json")
        store = FileObjectStore(work / "objects", keyring)
        uris = [f"s3://bench/d{i % 256:02x}/obj-{i:07d}" for i in range(args.objects)]
        payload = random.Random(1).randbytes(args.size)
        start = time.perf_counter()

        def put(uri: str) -> None:
            path = store.root / uri[len("s3://") :]
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "wb") as f:
                envelope.encrypt_stream(
                    io.BytesIO(payload), f, name=uri, version=new_version(), provider=keyring
                )

        with ThreadPoolExecutor(args.writers) as pool:
            for _ in pool.map(put, uris, chunksize=256):
                pass
        os.sync()
        fill_s = time.perf_counter() - start
        print(f"filled {args.objects} objects of {args.size} B in {fill_s:.1f} s "
              f"({args.objects / fill_s:.0f}/s, {args.writers} threads)")  # fmt: skip

        keys = MasterKeys(store, keyring, work / "keys" / "rewrap.json")
        keys.rewrapper.workers = args.workers
        keys.rewrapper.batch = args.batch
        readers = [Reader(store, uris, seed) for seed in range(args.readers)]
        for r in readers:
            r.thread.start()
        time.sleep(args.before_s)
        for r in readers:
            r.phase = "during"
        start = time.perf_counter()
        new = keys.rotate().key_id
        progress = keys.rewrapper.run_pass()
        pass_s = time.perf_counter() - start
        for r in readers:
            r.stop.set()
            r.thread.join()
        census = keys.rewrapper.census()

        before = [x for r in readers for x in r.latencies["before"]]
        during = [x for r in readers for x in r.latencies["during"]]
        failures = [f for r in readers for f in r.failures]
        rows = [
            ("objects", f"{progress.done}"),
            ("re-wrapped", f"{progress.rewrapped} (resealed {progress.resealed})"),
            ("re-wrap time", f"{pass_s:.1f} s"),
            ("objects/s", f"{progress.done / pass_s:.0f} ({args.workers} workers x {args.batch})"),
            ("read p50 before", f"{pct(before, 50) * 1e3:.3f} ms ({len(before)} reads)"),
            ("read p99 before", f"{pct(before, 99) * 1e3:.3f} ms"),
            ("read p50 during", f"{pct(during, 50) * 1e3:.3f} ms ({len(during)} reads)"),
            ("read p99 during", f"{pct(during, 99) * 1e3:.3f} ms"),
            ("reader failures", f"{len(failures)}"),
            ("all on new version", f"{census == {new: args.objects}}"),
        ]
        width = max(len(k) for k, _ in rows)
        print(f"\n{'metric':<{width}}  value")
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
        for f in failures[:5]:
            print("  failure:", f)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
