"""Authorization on the path a user calls: InvokeEndpoint through the control plane (auth on)
with a key whose identity has 100 policies attached, against the server's administrator key
(one policy, ``*``), in the same run on the same endpoint.

The 100 policies are ``benchmarks/authorization.py``'s: five statements each (Describe* on a
team's jobs, InvokeEndpoint on an exact ARN and on a wildcard, a Deny of DeleteEndpoint, a tag
condition); the endpoint invoked (``team99-main`` of 100) is allowed by the last policy only, so every
policy is in the way.
(``--policies N``: the endpoint is ``team<N-1>-main``.) Rounds alternate admin / 100 policies (and back), kept-alive clients at
each concurrency; the table gives the median req/s of each and their ratio.

    python benchmarks/authorization_e2e.py [--seconds 4] [--rounds 3] [--concurrency 1 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys

from orchestrator.client import Client

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from _server import control_plane, percentile
from authorization import team_policy
from endpoint_throughput import bench_config, model_tarball
from tls_overhead import kept_alive


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--policies", type=int, default=100)
    args = parser.parse_args()
    endpoint = f"team{args.policies - 1}-main"
    artifact, body = model_tarball()
    with control_plane() as (url, admin_key, _root), Client(url, admin_key) as client:
        bench_config(client, artifact)
        client.create_endpoint(EndpointName=endpoint, EndpointConfigName="bench")
        client.wait_for_endpoint(endpoint, poll=0.05)
        policies = {f"team{i}": team_policy(i) for i in range(args.policies)}
        client.create_user("teams", inline_policies=policies)
        many_key = client.create_user_key("teams", "bench")["ApiKey"]
        target = f"{url}/endpoints/{endpoint}/invocations"
        keys = {"admin (1 policy)": admin_key, f"{args.policies} policies": many_key}
        print(f"{'conc':>4} {'key':<18} {'req/s (median)':>15} {'p50 ms':>8} {'p99 ms':>8}")
        for conc in args.concurrency:
            rates: dict[str, list[float]] = {k: [] for k in keys}
            lats: dict[str, list[float]] = {k: [] for k in keys}
            for r in range(args.rounds):
                order = list(keys) if r % 2 == 0 else list(reversed(keys))
                for label in order:
                    headers = {
                        "Authorization": f"Bearer {keys[label]}",
                        "Content-Type": "application/json",
                    }
                    rps, lat = asyncio.run(
                        kept_alive(target, headers, body, True, conc, args.seconds)
                    )
                    rates[label].append(rps)
                    lats[label].extend(lat)
            medians = {k: statistics.median(v) for k, v in rates.items()}
            for label in keys:
                p50 = percentile(lats[label], 0.5) * 1e3
                p99 = percentile(lats[label], 0.99) * 1e3
                print(f"{conc:>4} {label:<18} {medians[label]:15.0f} {p50:8.2f} {p99:8.2f}")
            many, one = medians[f"{args.policies} policies"], medians["admin (1 policy)"]
            print(f"{conc:>4} {'ratio':<18} {many / one:15.3f}")


if __name__ == "__main__":
    main()
