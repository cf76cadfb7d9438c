"""The process backend's side of retries: each attempt's part of the one job log, the exit
kind read back from result.json, and the cgroup OOM counter (no processes started)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.backends.base import AttemptLogs
from orchestrator.backends.process.jobs import ProcessJobs
from orchestrator.settings import Settings
from orchestrator.training.files import JOB_FILE, LOG_START_FILE, RESULT_FILE
from orchestrator.training.runner import oom_kills


def attempt(jobs: ProcessJobs, n: int, start: int | None) -> Path:
    root = jobs.jobs_dir / "j" / f"attempt-{n}"
    root.mkdir(parents=True)
    (root / JOB_FILE).write_text("{}")
    if start is not None:
        (root / LOG_START_FILE).write_text(str(start))
    return root


@pytest.fixture
def jobs(tmp_path: Path) -> ProcessJobs:
    jobs = ProcessJobs(Settings(home=tmp_path / "home"))
    jobs.logs_dir.mkdir(parents=True)
    return jobs


def test_each_attempt_reads_its_own_part_of_the_log(jobs: ProcessJobs) -> None:
    assert isinstance(jobs, AttemptLogs)
    one, two, three = b"attempt one\n", b"attempt two, longer\n", b"three\n"
    jobs.job_log_path("j").write_bytes(one + two + three)
    attempt(jobs, 1, 0)
    attempt(jobs, 2, len(one))
    attempt(jobs, 3, len(one + two))
    assert jobs.read_attempt_log("j", 1, 0, 1000) == (one, len(one))
    assert jobs.read_attempt_log("j", 2, 0, 1000) == (two, len(two))
    assert jobs.read_attempt_log("j", 3, 0, 1000) == (three, len(three))
    # Paged: offsets count from the attempt's start, and stop at the next attempt's.
    assert jobs.read_attempt_log("j", 2, 4, 5) == (two[4:9], 9)
    assert jobs.read_attempt_log("j", 2, len(two), 100) == (b"", len(two))
    # The last attempt grows with the log.
    with open(jobs.job_log_path("j"), "ab") as f:
        f.write(b"more\n")
    assert jobs.read_attempt_log("j", 3, 0, 1000) == (three + b"more\n", len(three) + 5)


def test_an_attempt_that_never_started_writing_has_no_log(jobs: ProcessJobs) -> None:
    jobs.job_log_path("j").write_bytes(b"x\n")
    attempt(jobs, 1, None)
    assert jobs.read_attempt_log("j", 1, 0, 100) == (b"", 0)
    assert jobs.read_attempt_log("j", 7, 3, 100) == (b"", 3)


@pytest.mark.parametrize("kind", ["exit", "signal", "oom", None])
def test_the_exit_kind_is_read_back_from_the_result(jobs: ProcessJobs, kind: str | None) -> None:
    root = attempt(jobs, 1, 0)
    doc = {"outcome": "failed", "exit_code": -9, "started_at": 1, "ended_at": 2}
    (root / RESULT_FILE).write_text(json.dumps({**doc, "exit_kind": kind}))
    seen = jobs.observe_job("j")
    assert seen is not None and (seen.exit_code, seen.exit_kind) == (-9, kind)


def test_oom_kills_reads_the_cgroup_counter(tmp_path: Path) -> None:
    lines = Path("/proc/self/cgroup").read_text().splitlines()
    path = next((line[3:] for line in lines if line.startswith("0::")), None)
    if path is None:
        pytest.skip("no cgroup v2 here")
    events = tmp_path / path.lstrip("/") / "memory.events"
    events.parent.mkdir(parents=True, exist_ok=True)
    events.write_text("low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\noom_group_kill 0\n")
    assert oom_kills(tmp_path) == 2
    events.write_text("low 0\n")
    assert oom_kills(tmp_path) is None
    assert oom_kills(tmp_path / "nowhere") is None


def test_a_forced_stop_kills_the_user_code_and_leaves_the_supervisor_to_report(
    jobs: ProcessJobs, tmp_path: Path
) -> None:
    """After the grace the supervisor's group members (the user's code) get SIGKILL, the
    supervisor lives on (to sync the checkpoints and report); alone, it is killed next time."""
    import os
    import subprocess
    import sys
    import time

    from orchestrator import procs
    from orchestrator.training.files import PID_FILE

    root = attempt(jobs, 1, 0)
    child = tmp_path / "child.pid"
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, subprocess, sys, time\n"
            "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
            f"open({str(child)!r}, 'w').write(str(p.pid))\n"
            "p.wait()\n"
            "time.sleep(60)\n",
        ],
        start_new_session=True,
    )
    try:
        ticks = procs.start_ticks(leader.pid)
        (root / PID_FILE).write_text(procs.ProcessId(leader.pid, ticks or -1).to_json())
        deadline = time.monotonic() + 10
        while not child.exists() or not child.read_text():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        user = int(child.read_text())
        jobs.stop_job("j", force=True)
        deadline = time.monotonic() + 10
        while user in procs.group_members(procs.ProcessId(leader.pid, -1)):
            assert time.monotonic() < deadline, "the user's process outlived the forced stop"
            time.sleep(0.02)
        assert leader.poll() is None, "the supervisor was killed with its code"
        jobs.stop_job("j", force=True)  # nothing left but the supervisor: it goes too
        assert leader.wait(10) == -9
    finally:
        if leader.poll() is None:
            os.killpg(leader.pid, 9)
            leader.wait(10)


def test_a_launch_whose_pid_was_never_written_adopts_its_running_supervisor(
    jobs: ProcessJobs,
) -> None:
    """The control plane died between starting an attempt's supervisor and writing its pid:
    the next launch of that attempt finds the supervisor by its argument (the attempt's
    directory) and records it, rather than wiping the directory and starting a second one."""
    import subprocess
    import sys

    from core_builders import training_spec

    from orchestrator import procs
    from orchestrator.controller.plan.types import JobLaunch
    from orchestrator.training.files import PID_FILE

    root = attempt(jobs, 1, None)
    (root / "marker").write_text("kept")
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; time.sleep(60)", str(root)],
        start_new_session=True,
    )
    try:
        # Until the child has exec'd: before, its command line is still its parent's (a busy
        # machine, two test workers, takes a while), as no supervisor's ever is.
        cmdline = Path(f"/proc/{sleeper.pid}/cmdline")
        deadline = time.monotonic() + 10
        while str(root).encode() not in cmdline.read_bytes():
            assert time.monotonic() < deadline, "the sleeper never started"
            time.sleep(0.01)
        jobs.launch_job(JobLaunch("j", 1, training_spec("j"), "s3://b/o"))
        recorded = procs.ProcessId.from_file(root / PID_FILE)
        assert recorded is not None and recorded.pid == sleeper.pid
        assert (root / "marker").read_text() == "kept"  # the attempt's directory is kept
    finally:
        sleeper.kill()
        sleeper.wait(10)
