"""Encrypted object store throughput against plaintext file copies on the same disk.

PUT  encrypted: FileObjectStore.put_file (read source, encrypt, hash, write, fsync, rename)
     plaintext: read source, write a temp file, fsync, rename (same atomic-write helper)
GET  encrypted: FileObjectStore.get_file (read, decrypt, verify SHA-256, write, fsync, rename)
     plaintext: read the plaintext copy, write a temp file, fsync, rename

Runs are interleaved (plain, encrypted, plain, encrypted, ...) after one warm-up round; each
destination is deleted before its timed run so no run pays for unlinking the previous one.
The source is in the page cache for both sides. Reports the median of ``--runs``.

    python benchmarks/objectstore_throughput.py [--size-mib 100] [--runs 7] [--dir TMPDIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.objects import FileObjectStore, LocalKeyring
from orchestrator.objects.store import atomic_file

COPY_CHUNK = 4 << 20


def plain_copy(src: Path, dest: Path) -> None:
    with open(src, "rb") as f, atomic_file(dest) as out:
        while block := f.read(COPY_CHUNK):
            out.write(block)


def timed(fn: Callable[[], object], before: Callable[[], None]) -> float:
    before()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def unlink(*paths: Path) -> Callable[[], None]:
    def run() -> None:
        for p in paths:
            p.unlink(missing_ok=True)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chunk-mib", type=int, default=4)
    parser.add_argument(
        "--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the scratch dir goes"
    )
    args = parser.parse_args()
    size = args.size_mib << 20

    work = Path(tempfile.mkdtemp(prefix="objbench-", dir=args.dir))
    try:
        store = FileObjectStore(
            work / "objects", LocalKeyring(work / "keyring.json"), chunk_size=args.chunk_mib << 20
        )
        src = work / "source.bin"
        src.write_bytes(os.urandom(size))
        plain_obj = work / "objects" / "plain" / "source.bin"
        plain_obj.parent.mkdir(parents=True)
        enc_obj = store.root / "bench" / "source.bin"
        uri = "s3://bench/source.bin"
        plain_get, enc_get = work / "get-plain.bin", work / "get-enc.bin"

        ops: dict[str, tuple[Callable[[], object], Callable[[], None]]] = {
            "PUT plaintext": (lambda: plain_copy(src, plain_obj), unlink(plain_obj)),
            "PUT encrypted": (lambda: store.put_file(uri, src), unlink(enc_obj)),
            "GET plaintext": (lambda: plain_copy(plain_obj, plain_get), unlink(plain_get)),
            "GET encrypted": (lambda: store.get_file(uri, enc_get), unlink(enc_get)),
        }
        times: dict[str, list[float]] = {name: [] for name in ops}
        for run in range(args.runs + 1):
            for name, (fn, before) in ops.items():
                t = timed(fn, before)
                if run:  # the first round warms caches and allocators
                    times[name].append(t)
        assert enc_get.read_bytes() == src.read_bytes()
        overhead = (enc_obj.stat().st_size - size) / size

        mbps = {
            name: args.size_mib * 1.048576 / statistics.median(ts) for name, ts in times.items()
        }
        print(f"{args.size_mib} MiB, {args.runs} runs (median), chunk {args.chunk_mib} MiB")
        print(f"{'operation':<10}{'plaintext MB/s':>16}{'encrypted MB/s':>16}{'ratio':>8}"
              f"{'size overhead':>16}")  # fmt: skip
        for op in ("PUT", "GET"):
            plain, enc = mbps[f"{op} plaintext"], mbps[f"{op} encrypted"]
            print(f"{op:<10}{plain:>16.0f}{enc:>16.0f}{enc / plain:>8.2f}{overhead:>15.4%}")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
