"""Faults on a cluster: the operator SIGKILLed at random points while jobs run, the API pod
SIGKILLed with requests in flight, a Kubernetes API slower than the product's deadline.

The operator and the API run as real processes (``orch operator``, and ``orch server`` with
``ORCH_DESIRED_STATE=kubernetes``) that find the API emulator through a kubeconfig, as they
would find a cluster from a laptop, and die by SIGKILL: no handler runs, nothing is flushed,
as after an OOM kill or a lost node. The cluster's part (the Job controller, kubelet) is played
by the test (``JobController``). Randomness is seeded; every wait is ``eventually``.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kmock
import pytest
from kube_harness import (
    KEY,
    NS,
    PLURAL,
    Cluster,
    Emulator,
    JobController,
    cluster_settings,
    keys_file,
    kubeconfig,
)
from kubernetes import client
from typer.testing import CliRunner

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.cli import app as cli_app
from orchestrator.client import Client
from orchestrator.errors import TemporaryError
from orchestrator.kube import api as kube_api
from orchestrator.kube.jobs import job_name
from orchestrator.kube.objects import LABEL_ATTEMPT, LABEL_TRAINING_JOB
from orchestrator.settings import KubeSettings
from orchestrator.testing import ServerThread, eventually, training_job_spec

pytestmark = [pytest.mark.slow, pytest.mark.faults]

SEED = 20260502
JOBS, KILLS = 50, 20
# Retries allowed: an operator that lost track of an attempt would start another (a second
# Job) rather than fail the job, and this test would see it.
SPEC: dict[str, Any] = {
    "algorithmSpecification": {"trainingImage": "registry.example/algo:1"},
    "resourceConfig": {"instanceType": "ml.m5.large"},
    "stoppingCondition": {"maxRuntimeInSeconds": 3600},
    "retryStrategy": {"maximumRetryAttempts": 2},
}
# Operators forked from one that has only been built: each fork is a process of its own (its
# memory, its connections, its threads), made in milliseconds; started afresh, each would take
# 2-3 s of CPU (the kubernetes client builds its API classes on first use), 21 times.
READY = "operator running"
FORKS = f"""
import os, signal, sys
from orchestrator.kube.operator import operator_from_environment
operator_from_environment()  # imports everything it needs; connects to nothing
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the killed forks
while line := sys.stdin.readline():
    if os.fork() == 0:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        out = os.open(line.strip(), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        operator = operator_from_environment()
        print({READY!r}, os.getpid(), flush=True)
        operator.run()
        os._exit(0)
"""


@dataclass
class Processes:
    """Product processes that the test kills and restarts. Each starts a session of its own,
    so that teardown kills it and whatever it forked, whatever state the test left it in."""

    root: Path
    env: dict[str, str]
    alive: list[subprocess.Popen[bytes]] = field(default_factory=list)
    count: int = 0

    def start(
        self, name: str, *args: str, stdin: int | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        """``python ARGS``, its output in ``NAME-N.log``."""
        self.count += 1
        log = self.root / f"{name}-{self.count}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, *args],
                env=self.env,
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.alive.append(proc)
        return proc, log

    def wait_for(
        self, proc: subprocess.Popen[bytes], log: Path, ready: Callable[[str], bool]
    ) -> None:
        """Until ``ready(its log)``; a process that exits instead fails the test."""

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"exited {proc.returncode}:\n{log.read_text()}")
            return ready(log.read_text())

        eventually(up, timeout=60, what=f"{log.name}: ready")

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL, as the OOM killer or a lost node would."""
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        self.alive.remove(proc)

    def close(self) -> None:
        for proc in self.alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            if proc.stdin is not None:
                proc.stdin.close()
        self.alive.clear()


class Operators:
    """Operator processes forked on demand (``FORKS``), SIGKILLed by process id."""

    def __init__(self, processes: Processes) -> None:
        self.root = processes.root
        self.forks, self.log = processes.start("forks", "-c", FORKS, stdin=subprocess.PIPE)
        self.count = 0

    def start(self) -> int:
        """A new operator, once it runs (its process id)."""
        self.count += 1
        log = self.root / f"operator-fork-{self.count}.log"
        assert self.forks.stdin is not None
        self.forks.stdin.write(f"{log}\n".encode())
        self.forks.stdin.flush()

        def running() -> int | None:
            if self.forks.poll() is not None:
                code = self.forks.returncode
                raise RuntimeError(f"the forking process exited {code}:\n{self.log.read_text()}")
            text = log.read_text() if log.exists() else ""
            # The line is read once whole: a log read mid-write holds its start only. What
            # the operator logs while it is made (a warning) may come before it.
            ready = [line for line in text.splitlines(keepends=True) if line.startswith(READY)]
            whole = bool(ready) and ready[0].endswith("\n")
            return int(ready[0].split()[2]) if whole else None

        pid: int = eventually(running, timeout=60, what=f"{log.name}: running")
        return pid

    @staticmethod
    def kill(pid: int) -> None:
        """SIGKILL, as the OOM killer or a lost node would; back once it is gone."""
        os.kill(pid, signal.SIGKILL)

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        eventually(gone, timeout=10, what=f"operator {pid} gone")


@pytest.fixture
def processes(api: client.ApiClient, emulator: Emulator, tmp_path: Path) -> Iterator[Processes]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "KUBERNETES_", "KUBE"))
    }
    env.update(
        {
            "KUBECONFIG": str(kubeconfig(tmp_path / "kubeconfig", emulator.url)),
            "ORCH_HOME": str(tmp_path / "home"),
            "ORCH_CONFIG_DIR": str(tmp_path / "config"),
            "ORCH_KUBE__NAMESPACE": NS,
            "PYTHONUNBUFFERED": "1",
        }
    )
    procs = Processes(tmp_path, env)
    try:
        yield procs
    finally:
        procs.close()


def _plural(request: Any) -> str | None:
    return request.resource.plural if request.resource is not None else None


# --- the operator ----------------------------------------------------------------------------
def test_the_operator_killed_20_times_while_50_jobs_run_finishes_each_with_one_job(
    processes: Processes, cluster: Cluster, emulator: Emulator
) -> None:
    """50 TrainingJobs; the operator is SIGKILLed 20 times, each time 0.05-0.6 s into its
    work (a seeded draw), and started again; the Job controller moves each Job on at a pace of
    its own meanwhile. Every job ends Completed, each with one Job, made once."""
    rng = random.Random(SEED)
    names = [f"job-{i:02d}" for i in range(JOBS)]
    for name in names:
        cluster.create("TrainingJob", name, SPEC)
    stop = threading.Event()
    errors: list[BaseException] = []

    def play(api: client.ApiClient) -> None:
        # Each Job moves on every 0.1-1.5 s (4 moves): they end all through the killing.
        controller = JobController(Cluster(api), random.Random(SEED + 1), paces=(0.1, 1.5))
        while not stop.is_set():
            try:
                controller.step()
            except Exception as e:  # the test fails on it, once the operator is stopped
                errors.append(e)
                return
            stop.wait(0.2)

    config = client.Configuration()
    config.host = emulator.url
    done_at_kill: list[int] = []
    with client.ApiClient(config) as cluster_api:
        kubelet = threading.Thread(target=play, args=(cluster_api,), daemon=True)
        kubelet.start()
        try:
            operators = Operators(processes)
            for _ in range(KILLS):
                pid = operators.start()
                time.sleep(rng.uniform(0.05, 0.6))  # picks the point it dies at, nothing else
                operators.kill(pid)
                done_at_kill.append(_completed(cluster, names))
            # The last one as people start it: ``orch operator``, the cluster from KUBECONFIG.
            proc, log = processes.start("operator", "-m", "orchestrator.cli", "operator")
            processes.wait_for(proc, log, lambda text: "operator watching" in text)
            eventually(
                lambda: _completed(cluster, names) == JOBS,
                timeout=120,
                interval=0.5,
                what="every job Completed",
            )
        finally:
            stop.set()
            kubelet.join(10)
    assert not errors, errors
    assert proc.poll() is None, log.read_text()
    # The kills came while jobs ran, not after they had all finished.
    assert sum(done < JOBS for done in done_at_kill) >= KILLS // 2, done_at_kill

    for name in names:
        status = cluster.status("TrainingJob", name)
        assert status["trainingJobStatus"] == "Completed", (name, status)
        assert status["attempt"] == 1, (name, status)
        # As without a crash: a launch adopted after one is recorded as its launch would be.
        seen = [t["status"] for t in status["secondaryStatusTransitions"]]
        if seen[:1] == ["Pending"]:
            seen = seen[1:]  # it waited for a job slot first (50 jobs, 5 slots)
        assert seen == ["Starting", "Downloading", "Training", "Uploading", "Completed"], name
    # Exactly one Job per attempt, and only attempt 1: none was made twice, none replaced.
    per_attempt = Counter(
        (j["metadata"]["labels"][LABEL_TRAINING_JOB], j["metadata"]["labels"][LABEL_ATTEMPT])
        for j in cluster.items("Job")
    )
    assert per_attempt == Counter({(name, "1"): 1 for name in names})
    made = Counter(name for plural, name in emulator.km.created if plural == "jobs")
    assert made == Counter({job_name(name, 1): 1 for name in names})


def _completed(cluster: Cluster, names: list[str]) -> int:
    done = {
        i["metadata"]["name"]
        for i in cluster.resources("TrainingJob")
        if (i.get("status") or {}).get("trainingJobStatus") == "Completed"
    }
    return len(done & set(names))


# --- the API ---------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_api(processes: Processes) -> tuple[subprocess.Popen[bytes], str]:
    ready = processes.root / "api.url"
    ready.unlink(missing_ok=True)
    proc, log = processes.start(
        "server", "-m", "orchestrator.cli", "server", "--ready-file", str(ready)
    )
    processes.wait_for(proc, log, lambda _text: ready.exists())
    return proc, ready.read_text().strip()


def test_the_api_killed_with_requests_in_flight_loses_nothing_and_doubles_nothing(
    processes: Processes, cluster: Cluster, emulator: Emulator, tmp_path: Path
) -> None:
    """40 clients create a training job or a model each; the API process is SIGKILLed while
    their requests are in flight (some stored and not yet answered, some not yet stored); each
    client sends the same request again until it is answered, by the API started after it."""
    processes.env.update(
        {
            "ORCH_DESIRED_STATE": "kubernetes",
            "ORCH_API_KEYS_FILE": str(keys_file(tmp_path / "keys.json")),
            "ORCH_SERVER__PORT": str(_free_port()),  # the same address after the restart
            "ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS": "0",  # no quota: 20 at once
        }
    )
    first, url = _start_api(processes)
    # Each create is carried out, then answered after a while: a kill in between loses an
    # answer whose object is stored (the case an idempotent create exists for).
    creates = {PLURAL["TrainingJob"], PLURAL["Model"]}
    emulator.km.latency = lambda r: (
        1.0 if r.action == kmock.action.CREATE and _plural(r) in creates else 0.0
    )
    requests: dict[str, tuple[str, dict[str, Any]]] = {}
    for i in range(20):
        job = training_job_spec(f"job-{i:02d}", HyperParameters={"seed": str(i)})
        job.update(
            AlgorithmSpecification={"TrainingImage": "registry.example/algo:1"},
            ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        )
        requests[job["TrainingJobName"]] = ("/api/v1/training-jobs", job)
        model = {
            "ModelName": f"model-{i:02d}",
            "PrimaryContainer": {
                "Image": "registry.example/serve:1",
                "Environment": {"SEED": str(i)},
            },
        }
        requests[model["ModelName"]] = ("/api/v1/models", model)
    answers: dict[str, list[int | str]] = {name: [] for name in requests}
    start = threading.Barrier(len(requests) + 1)

    def send(name: str, path: str, body: dict[str, Any]) -> None:
        with Client(url, KEY, timeout=30) as c:
            start.wait()
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    answers[name].append(c.request("POST", path, json=body).status_code)
                    return
                except TemporaryError as e:  # no answer (the API is down), or a 503: again
                    answers[name].append(type(e).__name__)
                    time.sleep(0.1)
                except Exception as e:
                    answers[name].append(repr(e))
                    return

    threads = [
        threading.Thread(target=send, args=(name, path, body), daemon=True)
        for name, (path, body) in requests.items()
    ]
    for t in threads:
        t.start()
    before = len(emulator.km.created)
    start.wait()
    eventually(lambda: len(emulator.km.created) - before >= 8, timeout=30, what="8 stored")
    processes.kill(first)
    stored_at_kill = len(emulator.km.created) - before
    emulator.km.latency = None
    _second, url2 = _start_api(processes)
    assert url2 == url
    for t in threads:
        t.join(100)
    assert not any(t.is_alive() for t in threads)

    # Every request was answered in the end: created (201), or found made as asked (200).
    final = {name: seen[-1] for name, seen in answers.items()}
    assert all(code in (200, 201) for code in final.values()), Counter(map(str, final.values()))
    interrupted = {name for name, seen in answers.items() if len(seen) > 1}
    assert interrupted, answers
    # At least one was stored before the kill and its answer lost: the retry found it (200).
    assert any(final[name] == 200 for name in interrupted), (stored_at_kill, answers)
    # Nothing lost, nothing made twice, nothing more.
    made = Counter(emulator.km.created)
    expected = Counter(
        {(PLURAL["TrainingJob" if n.startswith("job") else "Model"], n): 1 for n in requests}
    )
    assert made == expected
    jobs = sorted(n for n in requests if n.startswith("job"))
    models = sorted(n for n in requests if n.startswith("model"))
    assert sorted(i["metadata"]["name"] for i in cluster.resources("TrainingJob")) == jobs
    assert sorted(i["metadata"]["name"] for i in cluster.resources("Model")) == models

    # The API started after the kill shows each, as sent.
    with Client(url, KEY) as c:
        for i in range(20):
            job = c.describe_training_job(f"job-{i:02d}")
            assert job.HyperParameters == {"seed": str(i)}
            assert job.AlgorithmSpecification.TrainingImage == "registry.example/algo:1"
            model = c.describe_model(f"model-{i:02d}")
            assert model.PrimaryContainer is not None
            assert model.PrimaryContainer.Environment == {"SEED": str(i)}
        listed = c.list_training_jobs(MaxResults=100).TrainingJobSummaries
        assert sorted(s.TrainingJobName for s in listed) == jobs
        assert sorted(m.ModelName for m in c.list_models(MaxResults=100).Models) == models
    # So does ``orch``.
    for args, key, field_name, expected_names in (
        (["jobs", "list", "--all"], "TrainingJobSummaries", "TrainingJobName", jobs),
        (["models", "list", "--all"], "Models", "ModelName", models),
    ):
        out = CliRunner().invoke(
            cli_app, ["--endpoint-url", url, "--api-key", KEY, "-o", "json", *args]
        )
        assert out.exit_code == 0, out.output
        assert sorted(i[field_name] for i in json.loads(out.output)[key]) == expected_names


def test_a_kubernetes_api_slower_than_the_deadline_is_a_503_and_leaves_nothing_half_made(
    api: client.ApiClient,
    settings: KubeSettings,
    cluster: Cluster,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every call to the Kubernetes API has a deadline; past it the API answers 503 with
    Retry-After at once rather than hang. A create the API server carried out but answered
    too late is there whole, and the client's retry of it is answered 200."""
    monkeypatch.setattr(kube_api, "REQUEST_TIMEOUT", (1.0, 1.0))
    slow = {"reads": 0.0, "creates": 0.0}

    def latency(r: Any) -> float:
        if _plural(r) != PLURAL["TrainingJob"]:
            return 0.0
        if r.action == kmock.action.CREATE:
            return slow["creates"]
        return slow["reads"] if r.action in (kmock.action.FETCH, kmock.action.LIST) else 0.0

    emulator.km.latency = latency
    spec = training_job_spec("slow", HyperParameters={"seed": "7"})
    spec.update(
        AlgorithmSpecification={"TrainingImage": "registry.example/algo:1"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    plane = build_control_plane(cluster_settings(tmp_path, settings), kube_api=api)
    with ServerThread(create_app(plane)) as server, Client(server.url, KEY) as c:
        slow["reads"] = 8.0
        for call in (
            lambda: c._http.get("/api/v1/training-jobs"),
            lambda: c._http.get("/api/v1/training-jobs/slow"),
            lambda: c._http.post("/api/v1/training-jobs", json=spec),
        ):
            began = time.monotonic()
            resp = call()
            assert resp.status_code == 503, resp.text
            assert int(resp.headers["Retry-After"]) >= 1
            # One deadline (1 s), not the slow answer (8 s), nor four deadlines in a row.
            assert time.monotonic() - began < 3.0, resp.text
            assert "did not answer in time" in resp.json()["message"]
        slow["reads"] = 0.0
        assert cluster.get("TrainingJob", "slow") is None  # nothing made

        slow["creates"] = 8.0  # stored, then answered too late
        began = time.monotonic()
        resp = c._http.post("/api/v1/training-jobs", json=spec)
        assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1, resp.text
        assert time.monotonic() - began < 3.0
        slow["creates"] = 0.0
        resp = c._http.post("/api/v1/training-jobs", json=spec)  # the client's retry
        assert resp.status_code == 200, resp.text
        assert emulator.km.created == [(PLURAL["TrainingJob"], "slow")]
        job = c.describe_training_job("slow")
        assert job.HyperParameters == {"seed": "7"}
        assert job.TrainingJobStatus == "InProgress"
