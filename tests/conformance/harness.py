"""The backend-neutral harness the scenarios are written against, and what they run.

A harness drives the product through its public doors (the REST API, through
``orchestrator.client.Client``) and observes through the same doors (describe, list, logs).
What differs per backend is small and named here:

- ``tick()``: let the world move on. On process and Docker nothing is needed (real
  processes and containers run by themselves); on Kubernetes the cluster double plays
  kubelet and the Job and Deployment controllers, then the operator makes a pass.
- ``round_trip()``: one invocation's HTTP round trip through the data plane (and
  ``send_held()``, the one ``invoke_later()`` sends while a variant is at zero).
- ``model_files()``, ``saved_on_stop()``: what a job's artifact holds.
- ``hosts_of()``, ``check_isolated()``, ``replicas()``, ``check_held()``, ``leftovers()``:
  the backend's own evidence of several hosts, of network isolation, of the replicas that
  run, of a request held at zero, and of what is still there for a resource, read through
  that backend's own public door (the job log, ``/proc``, ``docker``, ``kubectl``).

Scenarios name their resources after themselves (``two-instances...`` for
``test_two_instances``): a refused scenario is checked to have left no job of its name.

A method a backend cannot carry out here is decorated ``@gap(what, why)``: calling it is an
error; a scenario asks ``h.checks(part)`` first, and the part shows in the table as a gap.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

import joblib
import numpy as np
import pytest

from orchestrator.client import Client
from orchestrator.errors import NotFoundError, OrchestratorError, ValidationError
from orchestrator.resources.endpoints import DescribeEndpointResponse
from orchestrator.resources.training import (
    TERMINAL_TRAINING_STATUSES,
    DescribeTrainingJobResponse,
)
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    DescribeTransformJobResponse,
)
from orchestrator.testing import eventually, tarball, transform_job_spec
from tests.conformance.declarations import NotRunnable, Refused, Scenario

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# --- what the scenarios run -----------------------------------------------------------------
FRAMEWORK_ENV = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
    "TF_CONFIG",
)
# Prints them, one line per host: ``[algo-K] framework-env={...}``.
FRAMEWORK_PROBE = (
    f"print('framework-env=' + json.dumps({{k: os.environ[k] for k in {FRAMEWORK_ENV!r} "
    "if k in os.environ}), flush=True)"
)


@dataclass(frozen=True)
class Script:
    """A training script, described by what it does. ``source`` is the Python that process
    and Docker run; the Kubernetes double reports the same behaviour for the container it
    does not run (what it prints, what it writes to ``/opt/ml/output/failure``, its exit
    code, and whether it runs until SIGTERM). One description, so both agree."""

    prints: tuple[str, ...] = ()  # "{host}" in a line is the host that prints it
    model_files: tuple[tuple[str, str], ...] = ()  # (name, text) written to SM_MODEL_DIR
    failure: str = ""  # written to SM_OUTPUT_DIR/failure
    exit_code: int = 0
    until_stopped: bool = False  # runs until SIGTERM, then saves its model and exits 0
    extra: str = ""  # more Python, run after the prints (process and Docker only)
    # A spot job's: its first attempt writes a checkpoint and runs until SIGTERM; an attempt
    # that finds the checkpoint in place says so (RESUMED) and ends well.
    resumes: bool = False
    # With ``resumes``: the first attempt writes its checkpoint only on SIGTERM and keeps
    # running, so it is killed after the grace (the checkpoint must survive the kill).
    saves_on_sigterm: bool = False

    READY: ClassVar[str] = "script is running"
    ON_SIGTERM: ClassVar[str] = "got SIGTERM, saving"
    RESUMED: ClassVar[str] = "resuming from epoch 2"

    def _resumes(self) -> str:
        return _RESUMES.format(resumed=self.RESUMED, late=self.saves_on_sigterm, ready=self.READY)

    @property
    def resumed(self) -> Script:
        """What a ``resumes`` script does on an attempt that finds its checkpoint."""
        return Script(prints=(*self.prints, self.RESUMED), model_files=self.model_files)

    @property
    def source(self) -> str:
        return _SCRIPT.format(
            prints=list(self.prints),
            files=dict(self.model_files),
            failure=self.failure,
            code=self.exit_code,
            until_stopped=self.until_stopped,
            ready=self.READY,
            on_sigterm=self.ON_SIGTERM,
            extra=self.extra + (self._resumes() if self.resumes else ""),
        )

    @property
    def log(self) -> tuple[str, ...]:
        """The lines it prints, in order, as far as it gets by itself."""
        return (*self.prints, self.READY) if self.until_stopped else self.prints


# A ``resumes`` script's checkpoint (an epoch per file under SM_CHECKPOINT_DIR).
_RESUMES = """
ckpt = os.environ["SM_CHECKPOINT_DIR"]
os.makedirs(ckpt, exist_ok=True)
def write_checkpoint(*_):
    with open(os.path.join(ckpt, "epoch-1"), "w") as f:
        f.write("1")
    print("checkpoint written", flush=True)
if os.path.exists(os.path.join(ckpt, "epoch-1")):
    print({resumed!r}, flush=True)
    until_stopped = False
elif {late!r}:
    signal.signal(signal.SIGTERM, write_checkpoint)  # and runs on, until SIGKILL
    print({ready!r}, flush=True)
    while True:
        time.sleep(3600)
else:
    with open(os.path.join(ckpt, "epoch-1"), "w") as f:
        f.write("1")
    until_stopped = True
"""


_SCRIPT = """\
import json, os, signal, sys, time
def save():
    for name, text in {files!r}.items():
        with open(os.path.join(os.environ["SM_MODEL_DIR"], name), "w") as f:
            f.write(text)
for line in {prints!r}:
    print(line.replace("{{host}}", os.environ.get("SM_CURRENT_HOST", "algo-1")), flush=True)
until_stopped = {until_stopped!r}
{extra}
if until_stopped:
    def on_term(*_):
        print({on_sigterm!r}, flush=True)
        save()
        sys.exit(0)
    signal.signal(signal.SIGTERM, on_term)
    print({ready!r}, flush=True)
    while True:
        time.sleep(3600)
save()
if {failure!r}:
    with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as f:
        f.write({failure!r})
sys.exit({code!r})
"""


@dataclass(frozen=True)
class ServingModel:
    """A model to serve: answers ``answer`` to every row, or cannot load at all (``broken``:
    its ``model_fn`` raises with that message)."""

    answer: int = 0
    broken: str = ""

    @property
    def artifact(self) -> bytes:
        return tarball({"weights.txt": str(self.answer)})

    @property
    def inference(self) -> str:
        if self.broken:
            return f"def model_fn(model_dir):\n    raise RuntimeError({self.broken!r})\n"
        return (
            "import numpy as np\n"
            "def model_fn(model_dir):\n    return None\n"
            "def predict_fn(data, model):\n"
            f"    return np.full(len(data), {self.answer})\n"
        )


@dataclass(frozen=True)
class BatchModel:
    """A scikit-learn model for batch transform: a logistic regression on ``FEATURES`` columns
    (``fitted()``), its artifact ``model.joblib`` served by the default handler. ``sleep``: a
    script-mode ``predict_fn`` sleeps that long per request first, so that a scenario can
    catch the job half way."""

    sleep: float = 0.0

    @property
    def artifact(self) -> bytes:
        buf = io.BytesIO()
        joblib.dump(fitted(), buf)
        return _tar_bytes({"model.joblib": buf.getvalue()})

    @property
    def inference(self) -> str | None:
        if not self.sleep:
            return None
        return (
            "import time\n"
            "def predict_fn(data, model):\n"
            f"    time.sleep({self.sleep!r})\n"
            "    return model.predict(data)\n"
        )


FEATURES = 4


@functools.cache
def fitted() -> Any:
    """The scikit-learn model every ``BatchModel`` serves (trained once, seeded)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, FEATURES))
    return LogisticRegression().fit(x, (x[:, 0] - x[:, 1] > 0).astype(int))


def batch_rows(n: int, seed: int) -> list[list[str]]:
    """``n`` rows of ``FEATURES`` values, as a CSV file writes them."""
    x = np.random.default_rng(seed).normal(size=(n, FEATURES))
    return [[f"{v:.6g}" for v in row] for row in x]


def batch_csv(rows: list[list[str]]) -> bytes:
    return "".join(",".join(row) + "\n" for row in rows).encode()


def predicted(rows: list[list[str]]) -> list[str]:
    """What the model answers for each row, as the CSV answer writes it."""
    x = np.array([[float(v) for v in row] for row in rows])
    return [str(p) for p in fitted().predict(x).tolist()]


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


TUNING = "/api/v1/hyper-parameter-tuning-jobs"
ROW = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()


@dataclass(frozen=True)
class Answer:
    variant: str
    predictions: list[Any]


def untar(data: bytes) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member)
            if f is not None:
                out[member.name.removeprefix("./")] = f.read()
    return out


# --- gaps -------------------------------------------------------------------------------------
class Gap(Exception):
    """A declared gap was called: the scenario should have asked ``h.checks`` first."""


def gap(what: str, why: str) -> Callable[[F], F]:
    """Mark a harness method as a declared gap of its backend: ``what`` it would check, and
    ``why`` it cannot here (both go in the table). Implementing the method (and removing the
    decorator) turns its part on."""

    def mark(fn: F) -> F:
        def raising(*_args: Any, **_kwargs: Any) -> Any:
            raise Gap(f"{fn.__name__} is a declared gap here: {why}")

        raising.__name__ = fn.__name__
        raising.__doc__ = fn.__doc__
        raising.__gap__ = (what, why)  # type: ignore[attr-defined]
        return raising  # type: ignore[return-value]

    return mark


# --- the interface ----------------------------------------------------------------------------
@dataclass
class Held:
    """An invocation sent in the background (held by the data plane while a replica wakes)."""

    thread: threading.Thread
    result: list[Answer | BaseException] = field(default_factory=list)

    def answer(self, timeout: float = 60.0) -> Answer:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the held invocation did not end within {timeout} s"
        value = self.result[0]
        if isinstance(value, BaseException):
            raise value
        return value


class Harness:
    """One backend behind the product's public doors (see the module docstring)."""

    backend: ClassVar[str]
    # What a job or replica takes to start here at most (scales the waits).
    slowness: ClassVar[float] = 1.0
    # Filled by __init_subclass__: the methods declared as gaps, (what, why) of each.
    gaps: ClassVar[dict[str, tuple[str, str]]] = {}

    client: Client
    current: Scenario | None = None
    hit: list[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.gaps = {
            name: reason
            for name in dir(cls)
            if (reason := getattr(getattr(cls, name), "__gap__", None)) is not None
        }

    def __init__(self) -> None:
        self.hit = []
        self._endpoints: list[str] = []
        self._jobs: list[str] = []
        self._tunings: list[str] = []
        self._transforms: list[str] = []

    # --- gaps ---------------------------------------------------------------------------------
    def checks(self, part: str) -> bool:
        """Whether ``part`` (a harness method the scenario declared in ``uses``) runs here."""
        assert self.current is not None and part in self.current.uses, (
            f"scenario {self.current.id if self.current else '?'} uses {part!r} without "
            "declaring it (uses=...)"
        )
        if part in self.gaps:
            what, why = self.gaps[part]
            self.hit.append(f"{self.current.id} on {self.backend}: {what}: {why}")
            return False
        return True

    # --- waiting ------------------------------------------------------------------------------
    def tick(self) -> None:
        """Let the world move on (see the module docstring)."""

    def wait(self, check: Callable[[], T | None], what: str, timeout: float = 30.0) -> T:
        """``check()``'s first truthy answer, ticking before each try (``eventually``)."""

        def ticked() -> T | None:
            self.tick()
            return check()

        found = eventually(
            ticked,
            timeout=timeout * self.slowness,
            interval=0.05,
            what=f"{what} (on {self.backend})",
        )
        assert found is not None
        return found

    # --- training -----------------------------------------------------------------------------
    @staticmethod
    def script_hyperparameters(name: str) -> dict[str, str]:
        """The script-mode hyperparameters ``create_script_job`` sets (to add to them)."""
        uri = f"s3://orchestrator/{name}/source/sourcedir.tar.gz"
        return {"sagemaker_program": "train.py", "sagemaker_submit_directory": uri}

    def create_script_job(self, name: str, script: Script, **fields: Any) -> None:
        uri = f"s3://orchestrator/{name}/source/sourcedir.tar.gz"
        self.client.upload_bytes(tarball({"train.py": script.source}), uri)
        spec: dict[str, Any] = {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "HyperParameters": self.script_hyperparameters(name),
        }
        spec.update(fields)
        self.client.create_training_job(spec)
        self._jobs.append(name)

    def job(self, name: str) -> DescribeTrainingJobResponse:
        return self.client.describe_training_job(name)

    @contextlib.contextmanager
    def job_slots(self, slots: int) -> Iterator[None]:
        """Within the block, the control plane hands out ``slots`` training job slots (the
        setting ``controller.max_concurrent_training_jobs``; the harness servers run with the
        default, 5); the default again after it."""
        raise NotImplementedError
        yield

    def usage_series(self, name: str) -> dict[tuple[str, str], list[float]]:
        """The job's resource-usage series, (metric, host) -> values, as the API serves them."""
        resp = self.client.training_job_metrics(name)
        return {(m.MetricName, m.Host): [p.Value for p in m.Points] for m in resp.Metrics if m.Host}

    # --- tuning -------------------------------------------------------------------------------
    def create_tuning_job(
        self, name: str, script: Script, config: dict[str, Any], **definition: Any
    ) -> None:
        """A tuning job whose trials run ``script`` (script mode), tuned by ``config``."""
        uri = f"s3://orchestrator/{name}/source/sourcedir.tar.gz"
        self.client.upload_bytes(tarball({"train.py": script.source}), uri)
        spec = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {
                    "TrainingInputMode": "File",
                    "MetricDefinitions": [{"Name": "train:loss", "Regex": r"loss=(\S+)"}],
                },
                "StaticHyperParameters": {
                    "sagemaker_program": "train.py",
                    "sagemaker_submit_directory": uri,
                },
                **definition,
            },
        }
        self.client.request("POST", TUNING, json=spec)
        self._tunings.append(name)

    def tuning_job(self, name: str) -> dict[str, Any]:
        return self.client.request("GET", f"{TUNING}/{name}").json()  # type: ignore[no-any-return]

    def trials(self, name: str) -> list[dict[str, Any]]:
        rows = self.client.request("GET", f"{TUNING}/{name}/training-jobs").json()
        return rows["TrainingJobSummaries"]  # type: ignore[no-any-return]

    def wait_tuning(
        self, name: str, status: str | None = None, timeout: float = 90.0
    ) -> dict[str, Any]:
        """Until the tuning job ends (or reaches ``status``)."""

        def reached() -> dict[str, Any] | None:
            job = self.tuning_job(name)
            now = job["HyperParameterTuningJobStatus"]
            done = now == status if status else now in {"Completed", "Failed", "Stopped"}
            return job if done else None

        return self.wait(reached, f"tuning job {name} to {status or 'end'}", timeout)

    def wait_job(self, name: str, timeout: float = 60.0) -> DescribeTrainingJobResponse:
        """Until the job ends (Completed, Failed or Stopped)."""

        def ended() -> DescribeTrainingJobResponse | None:
            job = self.job(name)
            return job if job.TrainingJobStatus in TERMINAL_TRAINING_STATUSES else None

        return self.wait(ended, f"training job {name} to end", timeout)

    def wait_log(self, name: str, text: str, timeout: float = 30.0) -> str:
        """Until the job's log (REST: the job's logs) holds ``text``."""

        def logged() -> str | None:
            log = self.client.training_job_logs(name).text
            return log if text in log else None

        return self.wait(logged, f"{text!r} in the log of {name}", timeout)

    def model_files(self, uri: str) -> dict[str, bytes]:
        """The files of the model artifact at ``uri`` (downloaded through the REST API)."""
        return untar(self.client.download_bytes(uri))

    def checkpoint_object(self, uri: str) -> bytes | None:
        """The object at ``uri`` if it is in the store yet (read through the REST API): a
        checkpoint the job's checkpoint sync uploaded."""
        try:
            return self.client.download_bytes(uri)
        except NotFoundError:
            return None

    def resumed_from_checkpoint(self, name: str, attempt: int) -> bool:
        """Whether ``attempt`` of a ``resumes`` script found the checkpoint an earlier attempt
        wrote (it says so in its own log)."""
        return Script.RESUMED in self.client.training_job_logs(name, attempt=attempt).text

    def saved_on_stop(self, name: str) -> dict[str, bytes]:
        """The files of the artifact a stopped job's status reports (what it saved on
        SIGTERM)."""
        job = self.job(name)
        assert job.ModelArtifacts is not None, f"{self.backend}: {name} reports no artifact"
        return self.model_files(job.ModelArtifacts.S3ModelArtifacts)

    def hosts_of(self, job: str) -> list[str]:
        """Which hosts the job ran on, as this backend shows it."""
        raise NotImplementedError

    def check_isolated(self, job: str) -> None:
        """Assert, from this backend's own evidence, that the job had no network."""
        raise NotImplementedError

    def framework_env(self, job: str) -> dict[str, dict[str, str]]:
        """Host -> the distributed-training variables (``FRAMEWORK_ENV``) its process had, as
        this backend shows it (the script printed them: ``FRAMEWORK_PROBE``)."""
        raise NotImplementedError

    def control_plane_address(self) -> tuple[str, int]:
        """Where a job with a network would reach the control plane."""
        raise NotImplementedError

    def leftovers(self, name: str) -> list[str]:
        """What this backend still runs or keeps for resource ``name`` (empty: nothing)."""
        raise NotImplementedError

    # --- endpoints ----------------------------------------------------------------------------
    def create_model(self, name: str, model: ServingModel | BatchModel) -> None:
        """The model's artifact and (script mode) its ``inference.py`` uploaded, and a Model."""
        artifact = f"s3://orchestrator/{name}/model.tar.gz"
        self.client.upload_bytes(model.artifact, artifact)
        env: dict[str, str] = {}
        if model.inference is not None:
            source = f"s3://orchestrator/{name}/source.tar.gz"
            self.client.upload_bytes(tarball({"inference.py": model.inference}), source)
            env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": source}
        self.client.create_model(
            ModelName=name, PrimaryContainer={"ModelDataUrl": artifact, "Environment": env}
        )

    def create_endpoint(self, name: str, config: str, **config_fields: Any) -> None:
        self.client.create_endpoint_config(EndpointConfigName=config, **config_fields)
        self.client.create_endpoint(EndpointName=name, EndpointConfigName=config, AuthMode="None")
        self._endpoints.append(name)

    def endpoint(self, name: str) -> DescribeEndpointResponse:
        return self.client.describe_endpoint(name)

    def wait_endpoint(
        self,
        name: str,
        until: Callable[[DescribeEndpointResponse], bool],
        what: str,
        timeout: float = 60.0,
    ) -> DescribeEndpointResponse:
        def reached() -> DescribeEndpointResponse | None:
            ep = self.endpoint(name)
            if ep.EndpointStatus == "Failed" and "Failed" not in what:
                raise AssertionError(f"endpoint {name} failed: {ep.FailureReason}")
            return ep if until(ep) else None

        return self.wait(reached, f"endpoint {name}: {what}", timeout)

    def in_service(self, name: str, timeout: float = 60.0) -> DescribeEndpointResponse:
        return self.wait_endpoint(
            name, lambda ep: ep.EndpointStatus == "InService", "InService", timeout
        )

    def replicas(self, endpoint: str) -> int:
        """How many replicas of the endpoint run, as this backend shows it (processes,
        containers, pods)."""
        raise NotImplementedError

    def check_held(self, endpoint: str, variant: str) -> None:
        """Assert this backend's own record of a request held for ``variant`` (at zero), where
        it has a public one: on a cluster, the demand the API writes on the Endpoint for the
        operator. On one host the hold lives in the server's memory: its answer is the
        evidence."""

    def round_trip(self, endpoint: str, body: bytes, target_variant: str | None) -> Answer:
        """One invocation through the data plane's ``/endpoints/NAME/invocations``."""
        raise NotImplementedError

    def invoke(self, endpoint: str, body: bytes = ROW, target_variant: str | None = None) -> Answer:
        return self.round_trip(endpoint, body, target_variant)

    def invoke_later(self, endpoint: str, body: bytes = ROW) -> Held:
        """Send an invocation in the background (it may be held while a replica starts)."""
        result: list[Answer | BaseException] = []

        def send() -> None:
            try:
                result.append(self.send_held(endpoint, body))
            except BaseException as e:
                result.append(e)

        thread = threading.Thread(target=send, name=f"held-{endpoint}", daemon=True)
        thread.start()
        return Held(thread, result)

    def send_held(self, endpoint: str, body: bytes) -> Answer:
        """The request ``invoke_later`` sends: by default an ordinary round trip."""
        return self.round_trip(endpoint, body, None)

    def delete_endpoint(self, name: str) -> None:
        self.client.delete_endpoint(name)

    def wait_endpoint_gone(self, name: str, timeout: float = 60.0) -> None:
        def gone() -> bool:
            try:
                self.endpoint(name)
            except NotFoundError:
                return True
            return False

        self.wait(gone, f"endpoint {name} deleted", timeout)

    # --- batch transform ----------------------------------------------------------------------
    @staticmethod
    def transform_input(name: str) -> str:
        return f"s3://orchestrator/{name}/in/"

    @staticmethod
    def transform_output(name: str) -> str:
        return f"s3://orchestrator/{name}/out"

    def create_transform_job(
        self, name: str, model: str, inputs: dict[str, bytes], *, instances: int = 1, **fields: Any
    ) -> None:
        """``inputs`` (key under the job's input prefix -> CSV) uploaded, and a TransformJob
        scoring them with ``model``: SplitType Line, MultiRecord, AssembleWith Line
        (``fields`` override top-level fields)."""
        for key, data in inputs.items():
            self.client.upload_bytes(data, self.transform_input(name) + key)
        spec = transform_job_spec(
            name,
            model,
            self.transform_input(name),
            self.transform_output(name),
            instances=instances,
            split_type="Line",
            content_type="text/csv",
            **{"BatchStrategy": "MultiRecord", **fields},
        )
        spec["TransformOutput"].update({"Accept": "text/csv", "AssembleWith": "Line"})
        self.client.create_transform_job(spec)
        self._transforms.append(name)

    def transform_job(self, name: str) -> DescribeTransformJobResponse:
        return self.client.describe_transform_job(name)

    def wait_transform(
        self,
        name: str,
        until: Callable[[DescribeTransformJobResponse], bool] | None = None,
        what: str = "end",
        timeout: float = 90.0,
    ) -> DescribeTransformJobResponse:
        """Until the job ends (or ``until`` holds)."""

        def reached() -> DescribeTransformJobResponse | None:
            job = self.transform_job(name)
            if until is not None:
                return job if until(job) else None
            return job if job.TransformJobStatus in TERMINAL_TRANSFORM_STATUSES else None

        return self.wait(reached, f"transform job {name} to {what}", timeout)

    def transform_outputs(self, name: str) -> dict[str, str]:
        """The ``.out`` objects under the job's S3OutputPath, by key relative to it (read
        through the REST API)."""
        prefix = self.transform_output(name) + "/"
        out = {}
        for obj in self.client.list_objects(prefix):
            uri = obj["Uri"]
            out[uri.removeprefix(prefix)] = self.client.download_bytes(uri).decode()
        return out

    def still_running(self, name: str) -> list[str]:
        """What of transform job ``name`` still runs on this backend (runners, model servers:
        processes, containers, pods that have not ended)."""
        raise NotImplementedError

    def kill_instance(self, name: str, instance: int) -> None:
        """Kill the running attempt of ``instance`` of the job as a machine failure would: no
        chance to say anything (its runner and model server go at once)."""
        raise NotImplementedError

    # --- after each scenario ------------------------------------------------------------------
    def cleanup(self) -> None:
        """Stop the scenario's jobs that still run and delete its endpoints (their replicas
        cost CPU): what a failed scenario left must not slow the next ones down."""
        tunings, self._tunings = self._tunings, []
        for name in tunings:
            with contextlib.suppress(OrchestratorError):
                if self.tuning_job(name)["HyperParameterTuningJobStatus"] == "InProgress":
                    self.client.request("POST", f"{TUNING}/{name}/stop")
        transforms, self._transforms = self._transforms, []
        for name in transforms:
            with contextlib.suppress(OrchestratorError):
                if self.transform_job(name).TransformJobStatus not in TERMINAL_TRANSFORM_STATUSES:
                    self.client.stop_transform_job(name)
        jobs, self._jobs = self._jobs, []
        for job in jobs:
            with contextlib.suppress(OrchestratorError):
                if self.job(job).TrainingJobStatus not in TERMINAL_TRAINING_STATUSES:
                    self.client.stop_training_job(job)
        names, self._endpoints = self._endpoints, []
        for name in names:
            with contextlib.suppress(NotFoundError):
                self.delete_endpoint(name)
        for name in names:
            with contextlib.suppress(OrchestratorError):
                self.wait_endpoint_gone(name)


def play(s: Scenario, h: Harness) -> None:
    """Run scenario ``s`` on harness ``h`` as its cell declares."""
    cell = s.cells[h.backend]
    if isinstance(cell, NotRunnable):
        pytest.skip(f"{s.id} on {h.backend}: {cell.describe()}")
    h.current = s
    try:
        if isinstance(cell, Refused):
            with pytest.raises(ValidationError) as refused:
                s.run(h)
            e = refused.value
            assert e.field == cell.field, (
                f"{s.id} on {h.backend}: expected a refusal naming {cell.field}, got "
                f"field {e.field!r}: {e.message}"
            )
            assert f"on the {h.backend} backend" in e.message, e.message
            assert cell.rule.reason in e.message, e.message
            prefix = s.id.replace("_", "-")
            jobs = h.client.list_training_jobs(NameContains=prefix).TrainingJobSummaries
            assert not jobs, f"refused on {h.backend}, yet there are jobs: {jobs}"
            return
        s.run(h)
    finally:
        h.current = None
        h.cleanup()
