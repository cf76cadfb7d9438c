"""The S3 API against the native object API, for 100 MiB objects, on one `orch server`.

native PUT   Client.upload_file: PUT /api/v1/objects/..., bearer key, the file streamed
native GET   Client.download_bytes: GET /api/v1/objects/...
S3 PUT       boto3 put_object(Body=<the file>): one part; botocore's defaults over http
             (it reads the file twice before sending: the SHA-256 it signs, the CRC32 header)
S3 PUT unsig the same with payload_signing_enabled=False (UNSIGNED-PAYLOAD, as botocore does
             over https; the CRC32 is still computed first): the server's own cost shows
S3 upload    boto3 upload_file: multipart, 8 MiB parts, 10 threads (s3transfer's defaults)
S3 GET       boto3 get_object(...)["Body"].read()
S3 download  boto3 download_file: HeadObject, then ranged GETs with If-Match

Both sides talk to the same server process (the process backend, a real uvicorn, started as
`orch server`), over loopback, with the same file in the page cache. The SigV4 access key is
made in the server's own key store (there is no CLI for it yet). Runs are interleaved after
one warm-up round; reports the median of ``--runs`` and S3 MB/s over native MB/s.

    python benchmarks/s3_api.py [--size-mib 100] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3
from botocore.config import Config

from benchmarks._server import control_plane
from orchestrator.api.aws.credentials import AccessKeys
from orchestrator.client import Client
from orchestrator.objects import LocalKeyring
from orchestrator.store import StateStore


def access_key(home: Path) -> tuple[str, str]:
    store = StateStore(f"sqlite:///{home / 'state.db'}")
    try:
        keys = AccessKeys(store, LocalKeyring(home / "keys" / "keyring.json"))
        record, secret = keys.create(name="bench", role="admin", now=datetime.now(UTC))
    finally:
        store.close()
    return record.access_key_id, secret


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    size = args.size_mib << 20

    with control_plane() as (url, api_key, root):
        akid, secret = access_key(root / "home")
        native = Client(url, api_key, timeout=300)
        s3 = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=akid,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                          read_timeout=300),
        )  # fmt: skip
        unsigned = boto3.client(
            "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id=akid,
            aws_secret_access_key=secret,
            config=Config(s3={"addressing_style": "path", "payload_signing_enabled": False},
                          retries={"max_attempts": 1}, read_timeout=300),
        )  # fmt: skip
        s3.create_bucket(Bucket="bench")
        src = root / "source.bin"
        src.write_bytes(os.urandom(size))
        dest = root / "download.bin"

        def s3_put() -> None:
            with open(src, "rb") as f:
                s3.put_object(Bucket="bench", Key="s3.bin", Body=f)

        def s3_put_unsigned() -> None:
            with open(src, "rb") as f:
                unsigned.put_object(Bucket="bench", Key="unsigned.bin", Body=f)

        def s3_get() -> object:
            return s3.get_object(Bucket="bench", Key="s3.bin")["Body"].read()

        def s3_download() -> None:
            s3.download_file("bench", "s3.bin", str(dest))
            dest.unlink()

        ops: dict[str, Callable[[], object]] = {
            "native PUT": lambda: native.upload_file(src, "s3://bench/native.bin"),
            "S3 PUT": s3_put,
            "S3 PUT unsig": s3_put_unsigned,
            "S3 upload": lambda: s3.upload_file(str(src), "bench", "s3.bin"),
            "native GET": lambda: native.download_bytes("s3://bench/native.bin"),
            "S3 GET": s3_get,
            "S3 download": s3_download,
        }
        for fn in ops.values():  # warm-up, and the objects the GETs read
            fn()
        times: dict[str, list[float]] = {name: [] for name in ops}
        for _ in range(args.runs):
            for name, fn in ops.items():
                times[name].append(timed(fn))
        native.close()

    mb = size / 1e6
    median = {name: statistics.median(t) for name, t in times.items()}
    print(f"{args.size_mib} MiB, median of {args.runs} runs")
    print("| operation    | median s | MB/s | vs native |")
    print("|--------------|---------:|-----:|----------:|")
    for name in ops:
        base = median["native GET" if "GET" in name or "download" in name else "native PUT"]
        ratio = base / median[name]
        print(f"| {name:<12} | {median[name]:8.3f} | {mb / median[name]:4.0f} | {ratio:8.2f}x |")


if __name__ == "__main__":
    main()
