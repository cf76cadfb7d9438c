"""Authorization on the invocation path: microseconds per check with 1, 10 and 100 policies.

What is timed is the data plane's own check, ``DataPlaneFront._authorize``: the endpoint's ARN
built from the settings, the route's tags, and ``authorize(principal, "sagemaker:InvokeEndpoint",
arn, tags)`` over the principal's compiled ``PolicySet`` (compiled once per identity and cached
with it in the key cache; the compile is timed apart). It runs on every invocation right after
the key cache lookup (``_authenticate`` / ``_serve_signed``), so it is part of the per-request
server cost that ``benchmarks/serving/sigv4_cost.py``'s ``in_process`` step measures.

Each policy is a realistic one of five statements: Describe* on its team's training jobs,
InvokeEndpoint on its team's endpoint (an exact ARN) and on a wildcard of them, a Deny of
DeleteEndpoint on its production endpoints, and InvokeEndpoint on endpoints tagged with its
team (a tag condition). The endpoint invoked is allowed by the *last* policy only, so every
policy is in the way. Cases:

    exact      allowed by an exact ARN (the last policy's)
    tag        allowed only by the tag condition (the route's tags are read)
    denied     no policy allows it (the 403: the error built and raised)

    python benchmarks/authorization.py [--rounds 20000]
"""

from __future__ import annotations

import argparse
import time
import timeit
from typing import Any

from orchestrator import sigv4
from orchestrator.access import Principal
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.dataplane.front import DataPlaneFront
from orchestrator.dataplane.plane import DataPlane, DataPlaneSettings
from orchestrator.dataplane.recorder import LocalSink
from orchestrator.errors import PermissionDeniedError
from orchestrator.iam import PolicySet, parse_policy

ARN = "arn:aws:sagemaker:us-east-1:000000000000"


def team_policy(i: int) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sagemaker:Describe*",
             "Resource": f"{ARN}:training-job/team{i}-*"},
            {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
             "Resource": f"{ARN}:endpoint/team{i}-main"},
            {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
             "Resource": f"arn:aws:sagemaker:*:*:endpoint/team{i}-canary-*"},
            {"Effect": "Deny", "Action": "sagemaker:DeleteEndpoint",
             "Resource": f"{ARN}:endpoint/team{i}-prod*"},
            {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": "*",
             "Condition": {"StringEquals": {"aws:ResourceTag/team": f"team{i}"}}},
        ],
    }  # fmt: skip


def front() -> DataPlaneFront:
    principal = Principal("k", "bench", "invoke")
    plane = DataPlane(
        routes=RoutingTable(),
        key_checker=lambda _key: principal,
        signing_key_source=lambda a, d, r, s: (sigv4.signing_key("s", d, r, s), principal),
        endpoint_status=lambda _name: None,
        sink=LocalSink(None),
        settings=DataPlaneSettings(6 << 20, 60.0, 64),
    )
    return DataPlaneFront(lambda *_args: None, plane)  # type: ignore[arg-type,return-value]


def per_call_us(f: Any, rounds: int) -> float:
    """The best of 15 runs of ``rounds`` calls, in microseconds per call (the best, not the
    median: on a shared machine the others measure the neighbours)."""
    return min(timeit.repeat(f, number=rounds, repeat=15)) / rounds * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20_000)
    args = parser.parse_args()
    fr = front()
    variant = VariantRoute("main", 1.0, ("http://127.0.0.1:9",), config="c")
    print("| policies | statements | compile (ms) | exact (µs) | tag (µs) | denied (µs) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (1, 10, 100):
        print(row(fr, variant, n, args.rounds))


def row(fr: DataPlaneFront, variant: VariantRoute, n: int, rounds: int) -> str:
    """One line of the table: ``n`` team policies, the endpoint allowed by the last one."""
    policies = [parse_policy(team_policy(i), name=f"team{i}") for i in range(n)]
    t = time.perf_counter()
    compiled = PolicySet(policies, "bench")
    compile_ms = (time.perf_counter() - t) * 1e3
    p = Principal("k", "bench", "", compiled)
    last = n - 1
    exact = EndpointRoute(f"team{last}-main", False, (variant,))
    tagged = EndpointRoute("shared-ep", False, (variant,), (("team", f"team{last}"),))
    other = EndpointRoute("nobody-ep", False, (variant,), (("team", "none"),))
    fr._authorize(p, exact.endpoint, exact)
    fr._authorize(p, tagged.endpoint, tagged)

    def denied() -> None:
        try:
            fr._authorize(p, other.endpoint, other)
        except PermissionDeniedError:
            pass
        else:
            raise AssertionError("allowed")

    exact_us = per_call_us(lambda: fr._authorize(p, exact.endpoint, exact), rounds)
    tag_us = per_call_us(lambda: fr._authorize(p, tagged.endpoint, tagged), rounds)
    denied_us = per_call_us(denied, rounds // 4)
    return f"| {n} | {5 * n} | {compile_ms:.2f} | {exact_us:.2f} | {tag_us:.2f} | {denied_us:.2f} |"


if __name__ == "__main__":
    main()
