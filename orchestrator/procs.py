"""Processes we started, found again after a restart: pid plus kernel start time as identity.

A pid alone can be reused by an unrelated process after ours exits; the start time (field 22 of
``/proc/PID/stat``) tells them apart. Children of this process are reaped so they do not linger
as zombies.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

_children: dict[int, subprocess.Popen[bytes]] = {}
_exited: dict[int, int] = {}


@dataclass(frozen=True)
class ProcessId:
    pid: int
    start_ticks: int

    def to_json(self) -> str:
        return json.dumps({"pid": self.pid, "start_ticks": self.start_ticks})

    @staticmethod
    def from_file(path: Path) -> ProcessId | None:
        try:
            data = json.loads(path.read_text())
            return ProcessId(int(data["pid"]), int(data["start_ticks"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None


def start_ticks(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # exited, not yet reaped
        return None
    return int(fields[19])


def spawn(argv: list[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None) -> ProcessId:
    """Start ``argv`` in a new session (it survives us), output appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=env,
        )
    _children[proc.pid] = proc
    ticks = start_ticks(proc.pid)
    return ProcessId(proc.pid, ticks if ticks is not None else -1)


def reap() -> None:
    for pid, proc in list(_children.items()):
        code = proc.poll()
        if code is not None:
            _exited[pid] = code
            del _children[pid]


def exit_code(pid: int) -> int | None:
    """The exit status, when the process was our child and has exited."""
    reap()
    return _exited.get(pid)


def write_own_pid(path: Path) -> None:
    """Called by a supervisor at its start, so a launcher killed mid-launch leaves a trace."""
    from orchestrator.training.files import write_atomic

    ticks = start_ticks(os.getpid())
    write_atomic(path, ProcessId(os.getpid(), ticks if ticks is not None else -1).to_json())


_PR_SET_PDEATHSIG = 1


def dies_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that has the child SIGKILLed when this process (the thread that
    starts it) dies, however it dies: a runner killed with SIGKILL takes its server along.
    Linux only (``prctl``); elsewhere the child outlives its parent."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return lambda: None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


def signal_leader(pid_id: ProcessId, sig: signal.Signals) -> None:
    """Signal the process itself, not its group (it passes the signal on as it sees fit)."""
    if not alive(pid_id):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid_id.pid, sig)


def alive(pid_id: ProcessId) -> bool:
    reap()
    ticks = start_ticks(pid_id.pid)
    return ticks is not None and (pid_id.start_ticks in (-1, ticks))


def signal_group(pid_id: ProcessId, sig: signal.Signals) -> None:
    """Signal the whole process group (the supervisor and the code it runs)."""
    if not alive(pid_id):
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid_id.pid, sig)


def group_members(pid_id: ProcessId) -> list[int]:
    """The live processes of ``pid_id``'s process group other than its leader (``/proc``)."""
    members: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == pid_id.pid:
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pid_id.pid:
            members.append(int(entry.name))
    return members


def find_by_argument(argument: str) -> ProcessId | None:
    """A live process with ``argument`` as one of its command-line arguments (``/proc``)."""
    wanted = argument.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in argv:
            ticks = start_ticks(int(entry.name))
            if ticks is not None:
                return ProcessId(int(entry.name), ticks)
    return None


def kill_members(pid_id: ProcessId) -> bool:
    """SIGKILL the group's processes but its leader (a supervisor kills the code it runs and
    lives on to report); False when there were none left to kill."""
    if not alive(pid_id):
        return False
    members = group_members(pid_id)
    for pid in members:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return bool(members)
