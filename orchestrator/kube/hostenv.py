"""``python -m orchestrator.kube.hostenv -- COMMAND...``: run the user's command as this host.

One pod template serves every host of a multi-host Job, so its environment cannot say which
host a pod is. The download step wrote this pod's ``resourceconfig.json``; this reads it, sets
``SM_CURRENT_HOST`` and ``SM_HOSTS`` from it (as the SageMaker training toolkit does) and
``exec``s the command, which keeps the process id, the signals and the exit code.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from orchestrator.training.contract import ML_ROOT_ENV, MlPaths

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
    try:
        os.execvpe(args[0], args, env)  # noqa: S606 - the user's command, as the image runs it
    except OSError as e:
        print(f"[orchestrator] cannot run {args[0]!r}: {e}", file=sys.stderr)
        return FAILED
    return FAILED  # not reached: exec replaced this process


if __name__ == "__main__":
    raise SystemExit(main())
