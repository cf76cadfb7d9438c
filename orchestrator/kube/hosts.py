"""SageMaker's host names in a pod: wait until every host of the attempt resolves, then write
the hosts file the user's container mounts at ``/etc/hosts``.

Run by the download step (an init container) of every pod. The pods of a multi-host attempt
are ``<job>-<i>.<job>.<namespace>.svc.<domain>`` in DNS (an Indexed Job with a headless
Service); ``algo-<i+1>`` names nothing there. So the step looks each peer up until it answers
(its pod scheduled and given an address) or ``wait_seconds`` pass, and fails naming the first
host that never did. One host has no peers: only its own address is written.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.resources.failures import internal_error
from orchestrator.training.contract import Host
from orchestrator.training.transfer import TrainingFailure

LOCAL = [("127.0.0.1", ["localhost"]), ("::1", ["localhost", "ip6-localhost", "ip6-loopback"])]


def resolve(name: str) -> str | None:
    """The first address of ``name``, or None while it does not resolve."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return None
    return str(infos[0][4][0]) if infos else None


def wait_for_peers(
    peers: Sequence[str],
    host: Host,
    *,
    wait_seconds: float,
    lookup: Callable[[str], str | None] = resolve,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda _message: None,
) -> dict[int, str]:
    """Host index -> address for every host but ``host``; ``peers[i]`` is host i's DNS name."""
    if len(peers) != host.count:
        raise TrainingFailure(
            internal_error(
                f"the step configuration names {len(peers)} host(s) for a job on {host.count}"
            )
        )
    deadline = clock() + wait_seconds
    found: dict[int, str] = {}
    delay = 0.2
    while True:
        for i, name in enumerate(peers):
            if i != host.index and i not in found:
                address = lookup(name)
                if address is not None:
                    found[i] = address
                    say(f"algo-{i + 1} is {name} at {address}")
        missing = [i for i in range(host.count) if i != host.index and i not in found]
        if not missing:
            return found
        if clock() >= deadline:
            first = missing[0]
            raise TrainingFailure(
                internal_error(
                    f"host algo-{first + 1} ({peers[first]}) did not resolve within "
                    f"{wait_seconds:g} s ({len(missing)} of {host.count - 1} peers of "
                    f"{host.name} missing): its pod was never scheduled or given an address "
                    "(does the cluster have room for every host at once?), or DNS is "
                    "unreachable from the pod"
                )
            )
        sleep(delay)
        delay = min(delay * 2, 5.0)


def hosts_file(host: Host, own: str, peers: dict[int, str], aliases: Sequence[str]) -> str:
    """``/etc/hosts``: localhost, this host (``algo-k`` and ``aliases``: its pod's own names),
    then every peer's ``algo-k``."""
    lines = [f"{address}\t{' '.join(names)}" for address, names in LOCAL]
    lines.append(f"{own}\t{' '.join([host.name, *aliases])}")
    lines += [f"{peers[i]}\talgo-{i + 1}" for i in sorted(peers)]
    return "\n".join(lines) + "\n"


def write_hosts(
    path: Path,
    host: Host,
    peers: Sequence[str],
    *,
    own_address: str | None,
    wait_seconds: float,
    lookup: Callable[[str], str | None] = resolve,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    say: Callable[[str], None] = lambda _message: None,
) -> None:
    """Resolve the peers (several hosts), then write the hosts file at ``path``."""
    found: dict[int, str] = {}
    aliases = [socket.gethostname()]
    if host.count > 1:
        found = wait_for_peers(
            peers,
            host,
            wait_seconds=wait_seconds,
            lookup=lookup,
            clock=clock,
            sleep=sleep,
            say=say,
        )
        aliases.insert(0, peers[host.index])
    # POD_IP from the downward API; else what the pod's names resolve to.
    own = own_address or lookup(peers[host.index] if host.count > 1 else aliases[-1])
    if own is None:
        raise TrainingFailure(
            internal_error(
                "the pod's own address is unknown (POD_IP is not set and its name does not resolve)"
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(hosts_file(host, own, found, aliases))
    path.chmod(0o644)
