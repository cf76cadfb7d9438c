"""The cluster double's kubelet for transform pods: their containers run, as processes.

A transform Job's pod (``orchestrator.kube.transforms``) runs the product's own code only: the
model step (``python -m orchestrator.kube.steps fetch-model``), the model server sidecar
(``python -m orchestrator.serving``, the serving image's command) and the runner (``python -m
orchestrator.kube.transform_step``). ``TransformPods`` runs each one as the pod's spec says
(its command, args and env), this interpreter with this checkout standing for the images, and
maps only what the kubelet and the pod's sandbox provide:

- volumes: each ``mountPath`` is a directory here (the ``/opt/ml`` emptyDir one per pod, the
  keyring Secret the installation's keyring directory), wherever the args name it;
- the pod's own network: ``127.0.0.1:<serving_port>`` inside the pod is a free port here (in
  the sidecar's ``--port`` and the runner's server URL, the one field of its configuration
  the double touches);
- the termination message: ``terminationMessagePath`` is a file of the pod's (our steps are
  told it by their ``--termination-log`` flag, which defaults to that path); a container that
  failed with it empty has its log's last lines instead (``FallbackToLogsOnError``);
- logs: each container's output, stamped line by line as the kubelet stamps it (the backend
  reads transform logs with ``timestamps=true``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.kube import transforms as t
from tests.kube_operator.kube_harness import Cluster, stamp

REPO = Path(__file__).resolve().parents[2]
# What the kubelet keeps of a log for FallbackToLogsOnError (80 lines, 2048 bytes).
FALLBACK_LINES, FALLBACK_BYTES = 80, 2048
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _now() -> str:
    """A timestamp as the kubelet writes it before each log line (RFC 3339, nanoseconds)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


@dataclass
class _Container:
    """One container of a pod, running as a process (its own process group)."""

    name: str
    proc: subprocess.Popen[bytes]
    started: str
    message_file: Path
    fallback: bool  # terminationMessagePolicy FallbackToLogsOnError
    lines: list[str] = field(default_factory=list)  # stamped, as the kubelet serves them
    reader: threading.Thread | None = None
    ended: dict[str, Any] | None = None  # the terminated state, once it has ended

    def read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.append(f"{_now()} {raw.decode(errors='replace').rstrip()}")

    def poll(self) -> dict[str, Any] | None:
        """Its terminated state once it has ended (its output read to the end)."""
        if self.ended is None and self.proc.poll() is not None:
            if self.reader is not None:
                self.reader.join(5)
            code = self.proc.returncode
            code = 128 - code if code < 0 else code  # a signal, as the kubelet reports it
            done: dict[str, Any] = {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": self.started,
                "finishedAt": stamp(),
            }
            message = self._message(code)
            if message:
                done["message"] = message
            self.ended = done
        return self.ended

    def _message(self, code: int) -> str:
        try:
            text = self.message_file.read_text()[:4096]
        except OSError:
            text = ""
        if not text.strip() and code != 0 and self.fallback:
            tail = "\n".join(line.split(" ", 1)[-1] for line in self.lines[-FALLBACK_LINES:])
            text = tail.encode()[-FALLBACK_BYTES:].decode(errors="ignore")
        return text

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def state(self) -> dict[str, Any]:
        ended = self.poll()
        return {"terminated": ended} if ended else {"running": {"startedAt": self.started}}


@dataclass
class _Pod:
    name: str
    job: dict[str, Any]
    root: Path
    port: int
    containers: dict[str, _Container] = field(default_factory=dict)
    stage: str = "model"  # model -> running -> ended; terminating -> terminated -> gone
    terminating_since: float = 0.0

    @property
    def spec(self) -> dict[str, Any]:
        return dict(self.job["spec"]["template"]["spec"])

    def container_spec(self, name: str) -> dict[str, Any]:
        spec = self.spec
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            if c["name"] == name:
                return dict(c)
        raise AssertionError(f"pod {self.name} has no container {name}")

    def stop_all(self, sig: signal.Signals) -> None:
        for c in self.containers.values():
            c.signal(sig)


class TransformPods:
    """The pods of transform Jobs (see the module docstring): ``play`` moves one Job's pod on
    by a step, as the Job controller and the kubelet would."""

    def __init__(self, cluster: Cluster, logs: dict[tuple[str, str], str], keyring_dir: Path,
                 root: Path, serving_port: int) -> None:  # fmt: skip
        self.cluster = cluster
        self.logs = logs
        self.keyring_dir = keyring_dir
        self.root = root
        self.serving_port = serving_port
        self._pods: dict[str, _Pod] = {}  # by Job name
        self._suspended: set[str] = set()  # Jobs reported suspended

    # --- the Job controller and the kubelet ----------------------------------------------
    def play(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """``pods``: the Job's pods the API server has."""
        name = job["metadata"]["name"]
        suspended = bool(job["spec"].get("suspend"))
        pod = self._pods.get(name)
        listed = {p["metadata"]["name"] for p in pods}
        if pod is not None and pod.stage != "gone" and pod.name not in listed:
            pod.stop_all(signal.SIGKILL)  # deleted at once (grace 0): killed
            pod.stage = "gone"
        ended = bool(job.get("status", {}).get("conditions"))
        if pod is None or pod.stage == "gone":
            if suspended:
                self._report_suspended(name)
            elif pod is None and not ended:
                self._start(job)
            elif pod is not None and not ended:
                self._job_ended(pod, ok=False)  # its pod deleted: counted as failed
            return
        self._publish_logs(pod)
        if suspended and pod.stage in ("model", "running"):
            pod.stage, pod.terminating_since = "terminating", time.monotonic()
            runner = pod.containers.get(t.RUNNER)
            # The kubelet stops the main container first, the sidecar after it.
            (runner or pod.containers[t.MODEL]).signal(signal.SIGTERM)
        if pod.stage == "model":
            self._after_model(pod)
        elif pod.stage == "running":
            self._after_runner(pod)
        elif pod.stage == "terminating":
            self._terminating(pod)
        elif pod.stage == "terminated":
            self._delete(pod)
            self._report_suspended(name)

    def _start(self, job: dict[str, Any]) -> None:
        name = job["metadata"]["name"]
        pod = _Pod(f"{name}-0", job, self.root / "pods" / name, free_port())
        (pod.root / "ml").mkdir(parents=True, exist_ok=True)
        self._pods[name] = pod
        self.cluster.job_status(name, {"startTime": stamp(), "active": 1})
        self._run(pod, t.MODEL)
        self._report(pod)

    def _after_model(self, pod: _Pod) -> None:
        done = pod.containers[t.MODEL].poll()
        if done is None:
            return
        if done["exitCode"] != 0:
            pod.stage = "ended"
            self._report(pod, phase="Failed")
            self._job_ended(pod, ok=False)
            return
        # The sidecar, then (it has no startup probe) the runner beside it.
        self._run(pod, t.SERVE)
        self._run(pod, t.RUNNER)
        pod.stage = "running"
        self._report(pod)

    def _after_runner(self, pod: _Pod) -> None:
        done = pod.containers[t.RUNNER].poll()
        if done is None:
            return
        serve = pod.containers[t.SERVE]
        serve.signal(signal.SIGTERM)  # the kubelet stops the sidecar once the runner ended
        try:
            serve.proc.wait(10)
        except subprocess.TimeoutExpired:
            serve.signal(signal.SIGKILL)
            serve.proc.wait(10)
        pod.stage = "ended"
        ok = done["exitCode"] == 0
        self._report(pod, phase="Succeeded" if ok else "Failed")
        self._job_ended(pod, ok=ok)

    def _terminating(self, pod: _Pod) -> None:
        """A deleted pod (its Job suspended): SIGTERM, then SIGKILL after the grace."""
        grace = float(pod.spec.get("terminationGracePeriodSeconds") or 30)
        runner = pod.containers.get(t.RUNNER)
        if runner is not None and runner.poll() is None:
            if time.monotonic() - pod.terminating_since < grace:
                return
            runner.signal(signal.SIGKILL)
            runner.proc.wait(10)
        pod.stop_all(signal.SIGTERM)
        for c in pod.containers.values():
            try:
                c.proc.wait(10)
            except subprocess.TimeoutExpired:
                c.signal(signal.SIGKILL)
                c.proc.wait(10)
        self._publish_logs(pod)
        pod.stage = "terminated"
        self._report(pod, phase="Failed")

    def _run(self, pod: _Pod, name: str) -> None:
        spec = pod.container_spec(name)
        message = pod.root / f"{name}.termination-log"
        path = spec.get("terminationMessagePath") or DEFAULT_TERMINATION_PATH
        mounts = {
            m["mountPath"]: self._volume(pod, m["name"]) for m in spec.get("volumeMounts", [])
        }
        mounts[path] = message
        argv = [self._mapped(a, mounts) for a in [*spec.get("command", []), *spec.get("args", [])]]
        env = {e["name"]: e["value"] for e in spec.get("env", []) if "value" in e}
        if name == t.SERVE:
            argv = _with_option(_with_option(argv, "--port", str(pod.port)), "--host", "127.0.0.1")
        if name == t.RUNNER:
            cfg = json.loads(env[t.STEP_ENV])
            assert cfg["server_url"] == f"http://127.0.0.1:{self.serving_port}", cfg["server_url"]
            cfg["server_url"] = f"http://127.0.0.1:{pod.port}"
            env[t.STEP_ENV] = json.dumps(cfg)
        ours = argv[1:2] == ["-m"] and argv[2].startswith("orchestrator.kube.")
        if ours and "--termination-log" not in argv:
            argv += ["--termination-log", str(message)]
        assert argv[0] == "python", argv
        argv[0] = sys.executable
        base = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(REPO), "HOME": str(pod.root)}
        proc = subprocess.Popen(
            argv,
            cwd=pod.root,
            env={**base, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fallback = spec.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        c = _Container(name, proc, stamp(), message, fallback)
        c.reader = threading.Thread(target=c.read, name=f"log-{pod.name}-{name}", daemon=True)
        c.reader.start()
        pod.containers[name] = c

    def _volume(self, pod: _Pod, volume: str) -> Path:
        if volume == "keyring":
            return self.keyring_dir
        if volume == "ml":
            return pod.root / "ml"
        raise AssertionError(f"pod {pod.name}: no volume {volume} in a transform pod")

    @staticmethod
    def _mapped(arg: str, mounts: dict[str, Path]) -> str:
        for mount in sorted(mounts, key=len, reverse=True):
            if arg == mount or arg.startswith(mount.rstrip("/") + "/"):
                return str(mounts[mount]) + arg[len(mount) :]
        return arg

    # --- what the API server is told ----------------------------------------------------
    def _report(self, pod: _Pod, phase: str | None = None) -> None:
        c = pod.containers
        waiting = {"waiting": {"reason": "PodInitializing"}}
        init = [{"name": t.MODEL, "state": c[t.MODEL].state()}]
        serve = c.get(t.SERVE)
        init.append(
            {"name": t.SERVE, "state": serve.state(), "started": True, "ready": True}
            if serve is not None
            else {"name": t.SERVE, "state": waiting}
        )
        runner = c.get(t.RUNNER)
        main = [{"name": t.RUNNER, "state": runner.state() if runner else waiting}]
        status = {
            "phase": phase or ("Running" if runner is not None else "Pending"),
            "initContainerStatuses": init,
            "containerStatuses": main,
        }
        # A new pod is made from the Job's template: its labels and its annotations.
        template = pod.job["spec"]["template"]["metadata"]
        self.cluster.pod(pod.job, pod.name, status, annotations=template.get("annotations") or {})
        self._publish_logs(pod)

    def _publish_logs(self, pod: _Pod) -> None:
        for name, c in pod.containers.items():
            self.logs[(pod.name, name)] = "".join(line + "\n" for line in list(c.lines))

    def _job_ended(self, pod: _Pod, *, ok: bool) -> None:
        """``backoffLimit: 0``: the pod's end is the Job's."""
        kind, reason = ("Complete", "Completed") if ok else ("Failed", "BackoffLimitExceeded")
        at = stamp()
        status: dict[str, Any] = {
            "active": 0,
            "succeeded" if ok else "failed": 1,
            "conditions": [
                {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": at}
            ],
        }
        if ok:
            status["completionTime"] = at
        self.cluster.job_status(pod.job["metadata"]["name"], status)

    def _report_suspended(self, job: str) -> None:
        if job in self._suspended:
            return
        self._suspended.add(job)
        condition = {"type": "Suspended", "status": "True", "lastTransitionTime": stamp()}
        self.cluster.job_status(job, {"active": 0, "conditions": [condition]})

    def _delete(self, pod: _Pod) -> None:
        self.forget(pod.name)
        self.cluster.core.delete_namespaced_pod(pod.name, pod.job["metadata"]["namespace"])
        for key in [k for k in self.logs if k[0] == pod.name]:
            del self.logs[key]
        pod.stage = "gone"

    # --- faults and cleanup --------------------------------------------------------------
    def kill(self, transform_job: str, instance: int) -> None:
        """SIGKILL to every container of the instance's running pod (the host is lost)."""
        running = [
            p
            for p in self._pods.values()
            if p.stage == "running"
            and p.job["metadata"]["labels"].get(t.LABEL_TRANSFORM_JOB) == transform_job
            and (t.instance_attempt(p.job) or (-1, 0))[0] == instance
        ]
        assert running, f"no running pod of {transform_job} instance {instance}"
        for pod in running:
            pod.stop_all(signal.SIGKILL)

    def forget(self, pod_name: str) -> None:
        """A pod deleted (by the product, or the garbage collector): its processes go."""
        for pod in self._pods.values():
            if pod.name == pod_name:
                pod.stop_all(signal.SIGKILL)

    def close(self) -> None:
        for pod in self._pods.values():
            pod.stop_all(signal.SIGKILL)
            for c in pod.containers.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    c.proc.wait(10)
                if c.proc.stdout is not None:
                    c.proc.stdout.close()
        self._pods.clear()
        self._suspended.clear()


def _with_option(argv: list[str], option: str, value: str) -> list[str]:
    assert option in argv, f"{option} not in {argv}"
    out = list(argv)
    out[out.index(option) + 1] = value
    return out
