"""``python -m orchestrator.kube.hostenv -- COMMAND...``: run the user's command as this host.

One pod template serves every host of a multi-host Job, so its environment cannot say which
host a pod is. The download step wrote this pod's ``resourceconfig.json``; this reads it, sets
``SM_CURRENT_HOST`` and ``SM_HOSTS`` from it (as the SageMaker training toolkit does) and
``exec``s the command, which keeps the process id, the signals and the exit code.

With ``ORCH_USAGE_INTERVAL_SECONDS`` set (the operator sets it from
``ORCH_KUBE__USAGE_INTERVAL_SECONDS``)
it stays instead, as the container's first process, to sample the container's resource use
(``training.usage``): the command runs as its child, SIGTERM and SIGINT are passed on, the
exit code is the child's (128 + N when a signal N ended it, as a shell reports it), and every
interval a marked line with this host's CPU and memory (the container's own cgroup), the disk
under ``/opt/ml`` and the GPUs it was given goes to standard output, into the pod's log, where
the operator's readers split it off (``training.usage.split_usage``). The metrics API
(metrics.k8s.io) was the other way: one list per pass, but CPU and memory only (no disk, no
GPU), at the kubelet's resolution, and not in every cluster.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from orchestrator.training.contract import ML_ROOT_ENV, MlPaths
from orchestrator.training.usage import (
    ATTEMPT_ENV,
    INTERVAL_ENV,
    USAGE_MARK,
    VOLUME_ENV,
    CgroupProbe,
    DiskProbe,
    HostSampler,
    Sizes,
    UsageFile,
    UsageSampler,
    gpu_reader,
    memory_size,
)

USAGE = "usage: python -m orchestrator.kube.hostenv -- COMMAND [ARG...]"
# The exit code when the command cannot be started at all (sysexits' EX_SOFTWARE).
FAILED = 70


def host_environment(config: Path) -> dict[str, str]:
    doc = json.loads(config.read_text())
    hosts = doc["hosts"]
    current = doc["current_host"]
    if not isinstance(hosts, list) or current not in hosts:
        raise ValueError(f"current_host {current!r} is not one of hosts {hosts!r}")
    return {"SM_CURRENT_HOST": str(current), "SM_HOSTS": json.dumps(hosts)}


def sampled(args: list[str], env: dict[str, str], config: Path, interval: float) -> int:
    """Run the command as a child, this host's usage sampled meanwhile (see the docstring)."""
    doc = json.loads((config / "resourceconfig.json").read_text())
    instance_type = str(doc.get("current_instance_type") or "local")
    volume = float(env.get(VOLUME_ENV) or 0) * (1 << 30)
    ml = MlPaths(Path(env.get(ML_ROOT_ENV, "/opt/ml"))).root
    sizes = Sizes(memory_size(instance_type), int(volume))
    gpu = gpu_reader(instance_type, None)  # the container sees only the GPUs it was given
    disk = DiskProbe(ml, interval=interval)
    child = subprocess.Popen(args, env=env)

    def forward(signo: int, _frame: object) -> None:
        child.send_signal(signo)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    sampler = UsageSampler(
        UsageFile.on_fd(sys.stdout.fileno(), USAGE_MARK),
        int(env.get(ATTEMPT_ENV) or 1),
        {str(doc["current_host"]): CgroupProbe()},
        lambda probe: HostSampler(probe, sizes, disk=disk, gpus=gpu),
        interval=interval,
        on_error=lambda e: print(f"[orchestrator] usage sampling failed: {e}", file=sys.stderr),
    )
    sampler.start()
    try:
        code = child.wait()
    finally:
        sampler.stop()
    return 128 - code if code < 0 else code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        print(USAGE, file=sys.stderr)
        return 2
    config = MlPaths(Path(os.environ.get(ML_ROOT_ENV, "/opt/ml"))).config_dir
    try:
        env = {**os.environ, **host_environment(config / "resourceconfig.json")}
    except (OSError, ValueError, KeyError) as e:
        print(f"[orchestrator] cannot tell which host this is: {e}", file=sys.stderr)
        return FAILED
    interval = float(os.environ.get(INTERVAL_ENV) or 0)
    if interval > 0:
        try:
            return sampled(args, env, config, interval)
        except OSError as e:
            print(f"[orchestrator] cannot run {args[0]!r}: {e}", file=sys.stderr)
            return FAILED
    try:
        os.execvpe(args[0], args, env)  # noqa: S606 - the user's command, as the image runs it
    except OSError as e:
        print(f"[orchestrator] cannot run {args[0]!r}: {e}", file=sys.stderr)
        return FAILED
    return FAILED  # not reached: exec replaced this process


if __name__ == "__main__":
    raise SystemExit(main())
