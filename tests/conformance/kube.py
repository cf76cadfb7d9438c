"""The Kubernetes harness: the product as it runs on a cluster, against the API emulator.

- The store is the API emulator (``tests/kube_operator/kube_harness.py``: kmock's
  Kubernetes API over HTTP, with resourceVersion preconditions), driven through the official
  client by the product.
- The REST API is the cluster-mode control plane (``ORCH_DESIRED_STATE=kubernetes``), served
  in-process: a stateless front of the custom resources (keys from a file, routes decoded from
  the Endpoints' status, demand written back on a held request). Scenarios talk to it with
  ``orchestrator.client.Client``, as on every backend.
- The operator (``orch operator``: the reconciler core, the custom resources, the Kubernetes
  backend) makes one pass per ``tick``, reading the endpoints' traffic from that API
  (``kube.load.ApiTraffic``), as it reads it from the API pods on a cluster.
- ``ClusterDouble`` plays what a cluster would: kubelet and the Job and Deployment
  controllers, and cluster DNS for the fleets' Services. Its docstring lists every decision it
  makes; the product does everything else.
- Invocations go through the API's data plane as on every backend. The data plane sends what
  it routes to a fleet variant's Service URL
  (``https://<endpoint>-<variant>-<config>.<ns>.svc.cluster.local:8080``, from the Endpoint's
  status); the data plane's resolver seam (``dataplane.pool.Resolve``) plays cluster DNS and
  kube-proxy: it connects to the replica the double serves for that Deployment, the serving
  image's own app (``orchestrator.serving``) with the model's script, in-process, over HTTPS
  with the serving certificate the operator issued into the fleet's Secret, verified by the
  data plane against the replica CA Secret's certificate (replica TLS on, as the chart's
  ``replicaTls.enabled``).

The configuration is the chart's with ``ORCH_KUBE__NETWORK_ISOLATION_EGRESS`` set (without it
an isolated job is a 400 naming the setting: ``plan.support.REQUIREMENTS``, tested in
``tests/kube_operator/test_kube_api.py``).
"""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.client import Client
from orchestrator.controller.runtime import policies_from
from orchestrator.kube import objects as o
from orchestrator.kube import replica_tls as rt
from orchestrator.kube import transforms as t
from orchestrator.kube.jobs import HOST_INDEX_ENV
from orchestrator.kube.load import ApiTraffic
from orchestrator.kube.operator import Operator, operator_store
from orchestrator.objects import LocalKeyring
from orchestrator.serving.app import build_app
from orchestrator.serving.handler import ModelHandler
from orchestrator.settings import (
    ControllerSettings,
    EgressRule,
    KubeSettings,
    ServingSettings,
    Settings,
    TransformSettings,
)
from orchestrator.testing import ServerThread
from orchestrator.tls import new_ca_pem
from orchestrator.training.usage import ATTEMPT_ENV, INTERVAL_ENV, USAGE_MARK, usage_line
from tests.conformance.harness import (
    FRAMEWORK_ENV,
    Answer,
    BatchModel,
    Harness,
    Script,
    ServingModel,
    gap,
)
from tests.conformance.kube_pods import FALLBACK_BYTES, FALLBACK_LINES, TransformPods
from tests.kube_operator.kube_harness import (
    NS,
    Cluster,
    Emulator,
    emulator_client,
    ready_status,
    stamp,
)

KEY_ID, SECRET = "c0nf0rmance1", "a-conformance-secret-long-enough-for-the-key-rules"
KEY = f"orch_{KEY_ID}_{SECRET}"
EGRESS = [
    EgressRule.model_validate(
        {"to": [{"ipBlock": {"cidr": "10.96.0.1/32"}}], "ports": [{"port": 443}]}
    ),
    EgressRule.model_validate(
        {"to": [{"podSelector": {"matchLabels": {"app": "minio"}}}], "ports": [{"port": 9000}]}
    ),
]
# The held invocation's deadline on this API (and how long the operator counts demand).
HOLD_SECONDS = 20.0


@dataclass
class _Attempt:
    """The double's memory of one Job: how far its pods have got."""

    stage: str = "new"  # new -> downloading -> training -> trained -> ended
    started: str = ""  # the Job's start, and the download step's
    training: str = ""  # the algo container's start


class ClusterDouble:
    """What the tests play of a Kubernetes cluster, and nothing else. Each ``play()`` moves
    every Job and Deployment on by one step, as these would:

    - **Job controller, training Jobs.** A new Job gets ``startTime`` and ``active``, and one pod per host
      (an Indexed Job: one per completion index, with the index annotation). It completes
      (``Complete``, ``succeeded``, ``completedIndexes``) when every host's containers ended
      well; it fails (``Failed``, reason ``PodFailurePolicy``) when the ``algo`` container of a
      host failed; it fails with reason ``DeadlineExceeded`` once ``activeDeadlineSeconds``
      have passed since ``startTime``. A suspended Job (a stop, a delete) has its pods
      deleted (kubelet sends them SIGTERM), then ``active: 0`` and ``Suspended``.
    - **kubelet, training pods.** The ``download`` step ends well (it is the product's own
      code, tested on its own in ``tests/kube_operator/test_kube_steps.py``; no container runs
      here). The ``algo`` container behaves as the scenario's ``Script`` says: its log is what
      the script prints (served at ``pods/NAME/log``), it exits with the script's code, and
      its termination message is what the script wrote to ``/opt/ml/output/failure`` or, that
      being empty on a failure, the last lines of its log (``FallbackToLogsOnError``). A script
      that runs until stopped runs until its Job is suspended. The ``upload`` step ends well
      once ``algo`` has ended well.
    - **Deployment controller and kubelet, serving pods.** Every Deployment has
      ``spec.replicas`` pods, made and removed as it changes; a pod of a model that loads is
      Ready at once; a pod of a model that cannot load (``ServingModel.broken``) crash-loops
      with the error its ``model_fn`` raises as its last termination message. A pod the
      product deletes is replaced.
    - **Job controller and kubelet, transform pods.** A transform Job (one instance attempt)
      gets one pod whose containers run for real, as processes (``kube_pods.TransformPods``:
      the model step, then the model server sidecar and the runner, as the pod's spec says,
      with its volumes, its own localhost and its termination messages mapped to this host).
      The pod ends with the runner (the sidecar is stopped then), and the Job with the pod
      (``backoffLimit: 0``: Complete, or Failed with ``BackoffLimitExceeded``). A suspended
      Job's pod gets SIGTERM, SIGKILL after its grace, and is deleted once its containers
      have ended; a pod the product deletes at once has its processes killed. The only fault
      the double makes is the one a scenario asks for: a host lost (``kill``: every container
      of the pod gets SIGKILL, and the kubelet reports what it sees).
    - **Garbage collector.** The pods of a deleted Job or Deployment are deleted.
    - **The serving container, cluster DNS and kube-proxy.** A Deployment with Ready pods is
      served by one replica: the serving image's app with the model's script (what its pods
      would run, one process standing for all of them), over HTTPS with the certificate and
      key of the serving-certificate Secret its pod template mounts (as the kubelet projects
      a Secret volume; replica TLS is on). Its Service's name resolves to it
      (``resolve``) while the Deployment has Ready pods; with none (scaled to zero, a model
      that crash-loops, deleted) the name resolves to a port where nothing listens, as a
      Service without endpoints refuses connections.
    """

    def __init__(
        self, cluster: Cluster, emulator: Emulator, root: Path, kube: KubeSettings, keyring: Path
    ) -> None:
        self.cluster = cluster
        self.logs = emulator.km.logs
        self.transforms = TransformPods(
            cluster, self.logs, keyring.parent, root / "transform", kube.serving_port
        )
        self.scripts: dict[str, Script] = {}  # by training job name
        self.trial_scripts: dict[str, Script] = {}  # by tuning job name: what its trials run
        self.models: dict[str, ServingModel] = {}  # by model name
        self._jobs: dict[str, _Attempt] = {}
        self._pods_made: dict[str, int] = {}  # by Deployment: pods made so far (names them)
        self._root = root
        self._servers: dict[str, ServerThread] = {}  # by Deployment: its replica, while Ready
        self._served: dict[str, tuple[str, int]] = {}  # by Deployment: where its Service goes
        self._lock = threading.Lock()  # resolve() runs on the data plane's event loop
        self._nowhere = _closed_port()

    def resolve(self, host: str, port: int) -> tuple[str, int]:
        """Cluster DNS and kube-proxy: a fleet Service's name (``NAME.<ns>.svc...``) to its
        Deployment's replica; any other name as written."""
        name, _, rest = host.partition(".")
        if not rest.startswith(f"{NS}.svc."):
            return host, port
        with self._lock:
            return self._served.get(name, self._nowhere)

    def close(self) -> None:
        """Stop every replica (after a scenario: the API server forgets every object)."""
        for name in list(self._servers):
            self._stop_replica(name)
        self.transforms.close()
        self._jobs.clear()
        self._pods_made.clear()

    def play(self) -> None:
        pods = self.cluster.items("Pod")
        jobs = self.cluster.items("Job")
        deployments = self.cluster.items("Deployment")
        for job in jobs:
            owned = [p for p in pods if _owned_by(p, job)]
            if t.LABEL_TRANSFORM_JOB in _labels(job):
                self.transforms.play(job, owned)
            else:
                self._play_job(job, owned)
        for d in deployments:
            self._play_deployment(d, [p for p in pods if _owned_by(p, d)])
        names = {d["metadata"]["name"] for d in deployments}
        for gone in [n for n in self._servers if n not in names]:
            self._stop_replica(gone)
        owners = [*jobs, *deployments]
        for pod in pods:  # the garbage collector
            if not any(_owned_by(pod, owner) for owner in owners):
                self._delete_pod(pod["metadata"]["name"])

    # --- training ---------------------------------------------------------------------------
    def _script(self, job: dict[str, Any]) -> Script:
        name = job["metadata"]["labels"][o.LABEL_TRAINING_JOB]
        if name in self.scripts:
            return self.scripts[name]
        tuning = name.rsplit("-", 2)[0]  # a trial: <tuning>-<NNN>-<hash>
        return self.trial_scripts.get(tuning, Script())

    def _play_job(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        name = job["metadata"]["name"]
        attempt = self._jobs.setdefault(name, _Attempt())
        spec = job["spec"]
        hosts = int(spec.get("completions") or 1) if spec.get("completionMode") else 1
        script = self._script(job)
        if script.resumes:  # a spot job's: until stopped, then resumed from its checkpoint
            again = int(job["metadata"]["labels"].get(o.LABEL_ATTEMPT, "1")) > 1
            script = script.resumed if again else replace(script, until_stopped=True)
        if attempt.stage == "ended":
            return
        if spec.get("suspend"):
            self._terminate(job, pods)
            attempt.stage = "ended"
            return
        if attempt.stage == "new":
            attempt.started = stamp()
            self.cluster.job_status(name, {"startTime": attempt.started, "active": hosts})
            for i in range(hosts):
                self._host_pod(job, i, hosts, _download(running=attempt.started))
            attempt.stage = "downloading"
            return
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and _since(attempt.started) >= float(deadline):
            self.cluster.job_status(name, _failed("DeadlineExceeded", "Job was active longer"))
            attempt.stage = "ended"
            return
        now = stamp()
        if attempt.stage == "downloading":
            attempt.training = now
            for i in range(hosts):
                self._host_pod(job, i, hosts, _training(attempt.started, now))
                self._log(job, i, "\n".join(script.log) + _usage_lines(job, i))
            attempt.stage = "training"
            return
        if attempt.stage == "training":
            if script.until_stopped:
                return
            for i in range(hosts):
                algo = _terminated(script.exit_code, attempt.training, now, self._message(script))
                self._host_pod(
                    job, i, hosts, _training(attempt.started, attempt.training, algo=algo)
                )
            attempt.stage = "trained"
            return
        if attempt.stage == "trained":
            if script.exit_code != 0:
                self.cluster.job_status(name, _failed("PodFailurePolicy", "algo failed"))
            else:
                for pod in pods:
                    status = pod["status"]
                    status["containerStatuses"][1]["state"] = _terminated(0, attempt.training, now)
                    self.cluster.pod(job, pod["metadata"]["name"], status)
                self.cluster.job_status(name, _complete(hosts, now))
            attempt.stage = "ended"

    def _terminate(self, job: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        """A suspended Job: the Job controller deletes its pods (kubelet sends SIGTERM), then
        reports it suspended."""
        name, now = job["metadata"]["name"], stamp()
        for pod in pods:
            self._delete_pod(pod["metadata"]["name"])
        self.cluster.job_status(
            name,
            {
                "active": 0,
                "conditions": [{"type": "Suspended", "status": "True", "lastTransitionTime": now}],
            },
        )

    @staticmethod
    def _message(script: Script) -> str:
        if script.exit_code == 0:
            return ""
        if script.failure:
            return script.failure
        tail = "\n".join(script.log[-FALLBACK_LINES:])
        return tail.encode()[-FALLBACK_BYTES:].decode(errors="ignore")

    def _host_pod(self, job: dict[str, Any], index: int, hosts: int, st: dict[str, Any]) -> None:
        meta = {"annotations": {o.INDEX_ANNOTATION: str(index)}} if hosts > 1 else {}
        self.cluster.pod(job, f"{job['metadata']['name']}-{index}", st, **meta)

    def _log(self, job: dict[str, Any], index: int, text: str) -> None:
        host = f"algo-{index + 1}"
        self.logs[(f"{job['metadata']['name']}-{index}", o.ALGO)] = text.replace("{host}", host)

    # --- endpoints --------------------------------------------------------------------------
    def _play_deployment(self, d: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        name = d["metadata"]["name"]
        wanted = int(d["spec"].get("replicas") or 0)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        for pod in live[wanted:]:
            self._delete_pod(pod["metadata"]["name"])
        model = self.models.get(_model_name(d), ServingModel())
        for _ in range(wanted - len(live)):
            made = self._pods_made.get(name, 0)
            self._pods_made[name] = made + 1
            self.cluster.pod(d, f"{name}-{made}", _serving(model))
        ready = 0 if model.broken else wanted
        self.cluster.deployment_status(name, {"replicas": wanted, "readyReplicas": ready})
        if ready:
            self._serve(d, model)
        else:
            self._stop_replica(name)

    def _serving_certificate(self, d: dict[str, Any], directory: Path) -> tuple[Path, Path] | None:
        """The serving certificate Secret the pods mount (replica TLS), written where the
        replica reads it, as the kubelet projects a Secret volume; None: plain HTTP."""
        volumes = d["spec"]["template"]["spec"].get("volumes") or []
        names = [v["secret"]["secretName"] for v in volumes if v["name"] == rt.TLS_VOLUME]
        if not names:
            return None
        secret = self.cluster.core.read_namespaced_secret(names[0], NS, _preload_content=False)
        data = json.loads(secret.data)["data"]
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert, key = directory / rt.CERT_FILE, directory / rt.KEY_FILE
        cert.write_bytes(base64.b64decode(data[rt.CERT_FILE]))
        key.write_bytes(base64.b64decode(data[rt.KEY_FILE]))
        return cert, key

    def _serve(self, d: dict[str, Any], model: ServingModel) -> None:
        deployment = d["metadata"]["name"]
        if deployment in self._servers:
            return
        code = self._root / "replicas" / deployment
        code.mkdir(parents=True, exist_ok=True)
        (code / "inference.py").write_text(model.inference)
        handler = ModelHandler.load(code, code_dir=code, program="inference.py")
        app = build_app(handler, settings=ServingSettings(), endpoint=deployment)
        tls = self._serving_certificate(d, code / "tls")
        server = self._servers[deployment] = ServerThread(app, tls=tls).__enter__()
        address = server.url.partition("://")[2].rpartition(":")
        with self._lock:
            self._served[deployment] = (address[0], int(address[2]))

    def _stop_replica(self, deployment: str) -> None:
        with self._lock:
            self._served.pop(deployment, None)
        server = self._servers.pop(deployment, None)
        if server is not None:
            server.__exit__(None, None, None)

    def _delete_pod(self, name: str) -> None:
        self.transforms.forget(name)
        self.cluster.core.delete_namespaced_pod(name, NS)
        for key in [k for k in self.logs if k[0] == name]:
            del self.logs[key]


def _closed_port() -> tuple[str, int]:
    """A local port where nothing listens (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return "127.0.0.1", int(sock.getsockname()[1])


def _owned_by(pod: dict[str, Any], owner: dict[str, Any]) -> bool:
    """A pod of this Job or Deployment: its template's labels, all of them."""
    wanted = owner["spec"]["template"]["metadata"]["labels"]
    labels = pod["metadata"].get("labels") or {}
    return all(labels.get(k) == v for k, v in wanted.items())


def _model_name(d: dict[str, Any]) -> str:
    args = d["spec"]["template"]["spec"]["containers"][0].get("args") or []
    return str(args[args.index("--model-name") + 1]) if "--model-name" in args else ""


def _since(at: str) -> float:
    from datetime import UTC, datetime

    return (datetime.now(UTC) - datetime.fromisoformat(at)).total_seconds()


def _download(running: str) -> dict[str, Any]:
    init = {"name": o.DOWNLOAD, "state": {"running": {"startedAt": running}}}
    return {"phase": "Pending", "initContainerStatuses": [init]}


def _terminated(code: int, started: str, finished: str, message: str = "") -> dict[str, Any]:
    done: dict[str, Any] = {"exitCode": code, "startedAt": started, "finishedAt": finished}
    if code:
        done.update(reason="Error", message=message)
    return {"terminated": done}


def _training(started: str, training: str, *, algo: dict[str, Any] | None = None) -> dict[str, Any]:
    """A training pod whose download ran from ``started`` to ``training``, then ``algo``."""
    return {
        "phase": "Running",
        "initContainerStatuses": [{"name": o.DOWNLOAD, "state": _terminated(0, started, training)}],
        "containerStatuses": [
            {"name": o.ALGO, "state": algo or {"running": {"startedAt": training}}},
            {"name": o.UPLOAD, "state": {"running": {"startedAt": training}}},
        ],
    }


def _failed(reason: str, message: str) -> dict[str, Any]:
    cond = {"type": "Failed", "status": "True", "reason": reason, "message": message}
    return {"active": 0, "failed": 1, "conditions": [{**cond, "lastTransitionTime": stamp()}]}


def _complete(hosts: int, at: str) -> dict[str, Any]:
    return {
        "active": 0,
        "succeeded": hosts,
        "completedIndexes": f"0-{hosts - 1}" if hosts > 1 else "0",
        "completionTime": at,
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at}],
    }


def _serving(model: ServingModel) -> dict[str, Any]:
    if not model.broken:
        return ready_status()
    return {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "serve",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {
                    "terminated": {"exitCode": 1, "message": f"RuntimeError: {model.broken}"}
                },
                "restartCount": 2,
            }
        ],
    }


class KubernetesHarness(Harness):
    """The cluster-mode API and the operator against the emulator, the double as the cluster
    (see the module docstring)."""

    backend = "kubernetes"

    def __init__(self, root: Path, emulator: Emulator) -> None:
        super().__init__()
        self.emulator = emulator
        self.api = emulator_client(emulator.url)  # as the product's: each call tried once
        self.cluster = Cluster(self.api)
        home = root / "home"
        # The pods use the control plane's store (a file store here, as MinIO on a cluster).
        self.kube = KubeSettings(
            namespace=NS,
            network_isolation_egress=EGRESS,
            object_store_url=(home / "objects").as_uri(),
            termination_grace_seconds=10,
        )
        settings = Settings(
            home=root / "home",
            config_dir=root / "config",
            desired_state="kubernetes",
            api_keys_file=_keys_file(root / "keys.json"),
            kube=self.kube,
            controller=ControllerSettings(
                resync_seconds=0.2, stop_grace_seconds=2, retry_backoff_seconds=0.2
            ),
            # Replica TLS, as the chart's replicaTls.enabled: the API verifies replicas
            # against the replica CA Secret's certificate (mounted from it on a cluster).
            serving=ServingSettings(
                invocation_timeout_seconds=HOLD_SECONDS,
                replica_tls=True,
                replica_ca_file=root / "replica-ca" / "ca.crt",
            ),
            transform=TransformSettings(progress_interval_seconds=0.2),
        )
        self._install_replica_ca(root / "replica-ca" / "ca.crt")
        self.double = ClusterDouble(self.cluster, emulator, root, self.kube, settings.keyring_path)
        self.plane = build_control_plane(settings, kube_api=self.api)
        # The installation's keyring (the Secret the pods mount), made before the operator
        # opens the store with it.
        _ = LocalKeyring(settings.keyring_path).active_key_id
        app = create_app(self.plane)
        app.plane.router.pools.resolve = self.double.resolve
        self.server = ServerThread(app).__enter__()
        self.client = Client(self.server.url, KEY)
        self.traffic = ApiTraffic(
            self.api, self.kube, namespace=NS, api_key=KEY, urls=lambda: [self.server.url]
        )
        self.operator = Operator(
            self.api,
            self.kube,
            policies=policies_from(settings),
            telemetry=self.traffic,
            hold_seconds=HOLD_SECONDS,
            store=operator_store(settings, self.kube),
            transform=settings.transform,
            replica_tls=True,
        )

    def _install_replica_ca(self, mounted: Path) -> None:
        """The replica CA Secret as the operator makes it on its first start, and its
        certificate where the API pods mount it."""
        ca = new_ca_pem()
        self._ca_secret = rt.ca_secret(self.kube.replica_ca_secret, NS, ca)
        mounted.parent.mkdir(parents=True, exist_ok=True)
        mounted.write_bytes(ca.cert)
        self.cluster.core.create_namespaced_secret(NS, self._ca_secret)

    def close(self) -> None:
        self.client.close()
        self.server.__exit__(None, None, None)
        self.double.close()
        self.traffic.close()
        self.api.close()  # type: ignore[no-untyped-call]

    def cleanup(self) -> None:
        """After the scenario's own cleanup, the API server forgets every object (the API and
        the operator keep no state of their own), so that each scenario starts on an empty
        cluster and no pass lists what earlier scenarios left."""
        super().cleanup()
        self.double.close()
        self.emulator.km.objects.clear()
        self.emulator.km.logs.clear()
        # The installation's replica CA outlives the scenarios, as the operator keeps it.
        self.cluster.core.create_namespaced_secret(NS, copy.deepcopy(self._ca_secret))

    @contextlib.contextmanager
    def job_slots(self, slots: int) -> Iterator[None]:
        """The operator's reconciler hands out ``slots`` (what the setting gives it at start)."""
        reconciler = self.operator.reconciler
        before = reconciler.host
        reconciler.host = dataclasses.replace(before, slots=slots)
        try:
            yield
        finally:
            reconciler.host = before

    def tick(self) -> None:
        """The cluster moves on (the double), the operator makes a pass, and the API pods'
        routes catch up (their relist, without waiting for its period)."""
        self.double.play()
        self.operator.run_once()
        for service in self.plane.services:
            if hasattr(service, "refresh"):  # the routes' watch (not the key re-wrap)
                service.refresh()

    # --- training ---------------------------------------------------------------------------
    def create_script_job(self, name: str, script: Script, **fields: Any) -> None:
        self.double.scripts[name] = script
        super().create_script_job(name, script, **fields)

    def create_tuning_job(
        self, name: str, script: Script, config: dict[str, Any], **definition: Any
    ) -> None:
        self.double.trial_scripts[name] = script
        super().create_tuning_job(name, script, config, **definition)

    @gap(
        "the artifact's contents",
        "the upload step in the pod packs and uploads it, and no container runs against the "
        "emulator (the step is tested on its own in tests/kube_operator/test_kube_steps.py)",
    )
    def model_files(self, uri: str) -> dict[str, bytes]:
        raise NotImplementedError

    @gap(
        "checkpoints uploaded while the job runs",
        "the upload sidecar in the pod syncs them while the user's container runs, and no "
        "container runs against the emulator (the sidecar's loop is tested on its own in "
        "tests/kube_operator/test_kube_steps.py)",
    )
    def checkpoint_object(self, uri: str) -> bytes | None:
        raise NotImplementedError

    @gap(
        "the new attempt resumed from the checkpoint",
        "the download step in the new attempt's pod puts the last uploaded checkpoint under "
        "LocalPath, and no container runs against the emulator (the step is tested on its own "
        "in tests/kube_operator/test_kube_steps.py)",
    )
    def resumed_from_checkpoint(self, name: str, attempt: int) -> bool:
        raise NotImplementedError

    @gap(
        "a stopped job's artifact",
        "not reported on this backend: suspending the Job deletes its pods, and with them the "
        "upload step's status, so the operator cannot tell whether what the script saved on "
        "SIGTERM was uploaded (a limitation of the Kubernetes backend, not of the emulator)",
    )
    def saved_on_stop(self, name: str) -> dict[str, bytes]:
        raise NotImplementedError

    def hosts_of(self, job: str) -> list[str]:
        """The hosts of the job's attempt: an Indexed Job of one completion per host, its pods
        named by a headless Service, and the step configuration naming every peer."""
        (attempt,) = [
            j for j in self.cluster.items("Job") if _labels(j).get(o.LABEL_TRAINING_JOB) == job
        ]
        spec = attempt["spec"]
        assert spec["completionMode"] == "Indexed", spec
        assert spec["completions"] == spec["parallelism"], spec
        name = attempt["metadata"]["name"]
        service = [s for s in self.cluster.items("Service") if s["metadata"]["name"] == name]
        assert service and service[0]["spec"]["clusterIP"] == "None", service
        config = [c for c in self.cluster.items("ConfigMap") if c["metadata"]["name"] == name]
        peers = json.loads(config[0]["data"]["job.json"])["peers"]
        assert len(peers) == spec["completions"], peers
        return [f"algo-{i + 1}" for i in range(int(spec["completions"]))]

    def framework_env(self, job: str) -> dict[str, dict[str, str]]:
        """The user's container's env in the attempt's Job, as the kubelet expands it in pod
        ``i`` (``$(ORCH_HOST_INDEX)`` is its completion index, from the downward API)."""
        (attempt,) = [
            j for j in self.cluster.items("Job") if _labels(j).get(o.LABEL_TRAINING_JOB) == job
        ]
        pod = attempt["spec"]["template"]["spec"]
        (algo,) = [c for c in pod["containers"] if c["name"] == o.ALGO]
        env = algo["env"]
        index = env[0]
        assert index["name"] == HOST_INDEX_ENV, env[:1]
        assert o.INDEX_ANNOTATION in index["valueFrom"]["fieldRef"]["fieldPath"], index
        out: dict[str, dict[str, str]] = {}
        for i in range(int(attempt["spec"]["completions"])):
            seen = {
                e["name"]: e["value"].replace(f"$({HOST_INDEX_ENV})", str(i))
                for e in env[1:]
                if e["name"] in FRAMEWORK_ENV
            }
            out[f"algo-{i + 1}"] = seen
        return out

    def check_isolated(self, job: str) -> None:
        """The attempt's NetworkPolicy selects its pods and lets them reach nothing but DNS
        and the configured egress (whether a network plugin enforces it is not seen here)."""
        (policy,) = [
            p
            for p in self.cluster.items("NetworkPolicy")
            if _labels(p).get(o.LABEL_TRAINING_JOB) == job
        ]
        spec = policy["spec"]
        assert spec["podSelector"]["matchLabels"][o.LABEL_TRAINING_JOB] == job, spec
        assert spec["policyTypes"] == ["Ingress", "Egress"], spec
        assert spec["ingress"] == [], spec  # one host: nothing may connect to it
        assert len(spec["egress"]) == 1 + len(EGRESS), spec  # DNS and the steps' egress

    def control_plane_address(self) -> tuple[str, int]:
        return f"orchestrator-api.{NS}.svc.cluster.local", self.kube.api_port

    def leftovers(self, name: str) -> list[str]:
        """Objects the operator made for the resource, by their labels (``kubectl get``)."""
        out = []
        for kind in (
            "Job",
            "Pod",
            "ConfigMap",
            "Service",
            "NetworkPolicy",
            "Deployment",
            "PodDisruptionBudget",
            "HorizontalPodAutoscaler",
        ):
            for item in self.cluster.items(kind):
                labels = _labels(item)
                if o.k8s_name(name) in (
                    labels.get(o.LABEL_TRAINING_JOB),
                    labels.get(o.LABEL_ENDPOINT),
                ):
                    out.append(f"{kind} {item['metadata']['name']}")
        return out

    # --- endpoints --------------------------------------------------------------------------
    def create_model(self, name: str, model: ServingModel | BatchModel) -> None:
        if isinstance(model, ServingModel):
            self.double.models[name] = model
        super().create_model(name, model)

    def still_running(self, name: str) -> list[str]:
        """The job's pods that have not ended (``kubectl get pods -l
        orchestrator.dev/transform-job=...``)."""
        return [
            f"pod {p['metadata']['name']} ({p.get('status', {}).get('phase')})"
            for p in self.cluster.items("Pod")
            if _labels(p).get(t.LABEL_TRANSFORM_JOB) == o.k8s_name(name)
            and p.get("status", {}).get("phase") not in ("Succeeded", "Failed")
        ]

    def kill_instance(self, name: str, instance: int) -> None:
        """The host of the instance's running pod lost: the double kills its containers."""
        self.double.transforms.kill(o.k8s_name(name), instance)

    def round_trip(self, endpoint: str, body: bytes, target_variant: str | None) -> Answer:
        """The invocation through this API's ``/endpoints/NAME/invocations`` (as on every
        backend): its data plane routes it from the Endpoint's status to a fleet variant's
        Service URL, which the double resolves to that Deployment's replica."""
        answer = self.client.invoke_endpoint(endpoint, body, target_variant=target_variant)
        return Answer(answer.variant, json.loads(answer.body)["predictions"])

    def replicas(self, endpoint: str) -> int:
        """The endpoint's pods (``kubectl get pods -l orchestrator.dev/endpoint=...``)."""
        return sum(
            1
            for p in self.cluster.items("Pod")
            if _labels(p).get(o.LABEL_ENDPOINT) == o.k8s_name(endpoint)
            and not p["metadata"].get("deletionTimestamp")
        )

    def check_held(self, endpoint: str, variant: str) -> None:
        """The demand the API wrote on the Endpoint (its annotation, as kubectl shows it)."""
        cr = self.cluster.get("Endpoint", endpoint) or {}
        raw = (cr.get("metadata", {}).get("annotations") or {}).get("orchestrator.dev/demand")
        demand = dict(json.loads(raw)) if raw else {}
        assert variant in demand, f"no demand for {variant} on Endpoint {endpoint}: {raw!r}"


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj.get("metadata", {}).get("labels") or {})


def _keys_file(path: Path) -> Path:
    doc = {
        "keys": [
            {
                "KeyId": KEY_ID,
                "SecretHash": hashlib.sha256(SECRET.encode()).hexdigest(),
                "Name": "conformance",
                "Role": "admin",
            }
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


def _usage_lines(job: dict[str, Any], index: int) -> str:
    """What ``kube.hostenv`` writes into the log of an ``algo`` container started to sample
    (the manifest sets ORCH_USAGE_INTERVAL_SECONDS): two marked samples of a busy script (its
    measurement is tested for real in tests/kube_operator/test_kube_steps.py)."""
    (algo,) = [c for c in job["spec"]["template"]["spec"]["containers"] if c["name"] == o.ALGO]
    env = {e["name"]: e.get("value") for e in algo.get("env", [])}
    if not env.get(INTERVAL_ENV):
        return ""
    host, attempt, now = f"algo-{index + 1}", int(env[ATTEMPT_ENV] or 1), int(time.time() * 1000)
    first = usage_line(now, host, attempt, {"MemoryUtilization": 2.0, "DiskUtilization": 0.1})
    second = usage_line(
        now + 500, host, attempt, {"CPUUtilization": 97.0, "MemoryUtilization": 3.0}
    )
    return "\n" + (USAGE_MARK + first + USAGE_MARK + second).decode()
