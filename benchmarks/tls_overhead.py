"""What HTTPS costs on the invocation path: the same endpoint through the control plane over
plain HTTP and over TLS (a self-signed certificate), on kept-alive connections at several
concurrencies, and on a new connection per request (a TLS handshake each time). The
``replica`` mode is plain HTTP to the control plane and TLS from its router to the replica
(``ORCH_SERVING__REPLICA_TLS=true``; the router keeps its TLS connections alive).

    python benchmarks/tls_overhead.py [--seconds 5] [--concurrency 1 8] [--fresh 200]
        [--modes http https replica]
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
import tempfile
import time
from pathlib import Path

import httpx

from orchestrator import tls
from orchestrator.client import Client

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import control_plane, percentile
from endpoint_throughput import bench_config, model_tarball


async def kept_alive(
    url: str,
    headers: dict[str, str],
    body: bytes,
    verify: ssl.SSLContext | bool,
    conc: int,
    seconds: float,
) -> tuple[float, list[float]]:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=conc)
    async with httpx.AsyncClient(timeout=30, trust_env=False, verify=verify, limits=limits) as http:

        async def worker() -> None:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await http.post(url, content=body, headers=headers)
                r.raise_for_status()
                latencies.append(time.perf_counter() - t0)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(conc)))
        return len(latencies) / (time.perf_counter() - started), latencies


def fresh(
    url: str, headers: dict[str, str], body: bytes, verify: ssl.SSLContext | bool, n: int
) -> list[float]:
    latencies = []
    # httpx.Client() builds an SSL context from certifi's bundle each time it is made (about
    # 25 ms here), even for an http:// URL: made once, so what is timed is the connection.
    if verify is True:
        verify = ssl.create_default_context()
    for _ in range(n):
        t0 = time.perf_counter()
        with httpx.Client(timeout=30, trust_env=False, verify=verify) as http:
            http.post(url, content=body, headers=headers).raise_for_status()
        latencies.append(time.perf_counter() - t0)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--fresh", type=int, default=200)
    parser.add_argument(
        "--modes", nargs="+", choices=["http", "https", "replica"], default=["http", "https"]
    )
    args = parser.parse_args()
    artifact, body = model_tarball()
    made = tls.self_signed("127.0.0.1", Path(tempfile.mkdtemp(prefix="orch-bench-tls-")))
    modes = {
        "http": ({}, True, None),
        "https": (
            {
                "ORCH_SERVER__TLS_CERT_FILE": str(made.cert),
                "ORCH_SERVER__TLS_KEY_FILE": str(made.key),
            },
            tls.client_context(made.cert),
            made.cert,
        ),
        "replica": ({"ORCH_SERVING__REPLICA_TLS": "true"}, True, None),
    }
    modes = {m: modes[m] for m in args.modes}
    print(f"{'mode':<7} {'connections':<12} {'conc':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for mode, (env, verify, ca) in modes.items():
        with control_plane(**env) as (url, key, _root), Client(url, key, ca_bundle=ca) as client:
            bench_config(client, artifact)
            client.create_endpoint(EndpointName="bench", EndpointConfigName="bench")
            client.wait_for_endpoint("bench", poll=0.05)
            target = f"{url}/endpoints/bench/invocations"
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            for conc in args.concurrency:
                rps, lat = asyncio.run(
                    kept_alive(target, headers, body, verify, conc, args.seconds)
                )
                p50, p99 = percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3
                print(f"{mode:<7} {'kept alive':<12} {conc:>4} {rps:8.0f} {p50:8.2f} {p99:8.2f}")
            lat = fresh(target, headers, body, verify, args.fresh)
            p50, p99 = percentile(lat, 0.5) * 1e3, percentile(lat, 0.99) * 1e3
            print(
                f"{mode:<7} {'new each':<12} {1:>4} {len(lat) / sum(lat):8.0f} {p50:8.2f} {p99:8.2f}"
            )


if __name__ == "__main__":
    main()
