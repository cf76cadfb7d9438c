"""Which SageMaker fields each backend carries out, and a clear refusal for the rest. Pure.

The resource models accept SageMaker's whole request shape so that requests written for
SageMaker parse; a field that a backend cannot honour must never be silently ignored. Each
rule below names the field, the backends that refuse it, and what to use instead; the REST
API answers 400 with that message before anything is stored, and a custom resource gets
``Valid=False`` with it (its camelCase path). ``docs/conformance.md`` lists the table.

Some fields a backend honours only once it is configured for them (``Requirement``): Kubernetes
runs ``EnableNetworkIsolation`` as a NetworkPolicy, which must let the orchestrator's own steps
in the pod reach the object store, so it needs ``ORCH_KUBE__NETWORK_ISOLATION_EGRESS``. The
backend checks ``unmet_requirements`` with what its settings hold before it creates anything,
and refuses the job (terminal: it fails with the message) rather than start one that cannot
download its data.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from orchestrator.resources.datasources import CreateDataSourceRequest
from orchestrator.resources.distribution import (
    DISTRIBUTION_INSTEAD,
    UNSUPPORTED_DISTRIBUTIONS,
    enabled,
)
from orchestrator.resources.endpoints import CreateEndpointConfigRequest
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.transform import CreateTransformJobRequest

BACKENDS = ("process", "docker", "kubernetes")
ALL = frozenset(BACKENDS)


@dataclass(frozen=True)
class Refusal:
    field: str  # the API's path, e.g. "ResourceConfig.InstanceCount"
    backend: str
    reason: str  # what the backend cannot do
    instead: str  # what to use instead

    @property
    def message(self) -> str:
        return f"{self.field}: {self.reason} on the {self.backend} backend; {self.instead}"


@dataclass(frozen=True)
class Rule:
    """One field a set of backends refuses; ``present`` finds it in a spec (its paths)."""

    kind: str
    field: str
    refused_on: frozenset[str]
    reason: str
    instead: str
    present: Callable[[Any], list[str]]


def _flag(get: Callable[[Any], object], path: str) -> Callable[[Any], list[str]]:
    return lambda spec: [path] if get(spec) else []


def _channels(test: Callable[[Any], bool], leaf: str) -> Callable[[Any], list[str]]:
    def find(spec: CreateTrainingJobRequest) -> list[str]:
        return [
            f"InputDataConfig[{i}].{leaf}" for i, c in enumerate(spec.InputDataConfig) if test(c)
        ]

    return find


def _variants(test: Callable[[Any], bool], leaf: str) -> Callable[[Any], list[str]]:
    def find(spec: CreateEndpointConfigRequest) -> list[str]:
        out: list[str] = []
        for group in ("ProductionVariants", "ShadowProductionVariants"):
            for i, v in enumerate(getattr(spec, group)):
                if test(v):
                    out.append(f"{group}[{i}].{leaf}")
        return out

    return find


def _hyperparameter(name: str) -> Callable[[Any], list[str]]:
    """A hyperparameter set true (the SDK's distribution flags)."""
    return lambda spec: [f"HyperParameters.{name}"] if enabled(spec, name) else []


def _images(spec: CreateModelRequest) -> list[str]:
    """The containers that name an image of their own (not one ``resources.images`` stands in
    for with the serving image)."""
    if spec.PrimaryContainer is not None:
        return ["PrimaryContainer.Image"] if spec.PrimaryContainer.own_image else []
    return [f"Containers[{i}].Image" for i, c in enumerate(spec.Containers or []) if c.own_image]


# KmsKeyId on what a resource writes to the object store (OutputDataConfig.KmsKeyId,
# TransformOutput.KmsKeyId) is carried out on every backend: the key provider wraps each
# object's data key under it (objects/providers.py). What is refused is encryption of
# instance volumes: nothing here manages the disks.
KMS_INSTEAD = (
    "leave it unset; objects the resource writes are encrypted under OutputDataConfig.KmsKeyId "
    "or TransformOutput.KmsKeyId"
)


def _loopback_database(spec: CreateDataSourceRequest) -> list[str]:
    sql = spec.DataSpec.Sql
    if sql is None:
        return []
    host = sql.DatabaseInformation.Host.strip("[]").lower()
    loopback = host in ("localhost", "::1", "0.0.0.0") or host.startswith("127.")
    return ["DataSpec.Sql.DatabaseInformation.Host"] if loopback else []


RULES: tuple[Rule, ...] = (
    Rule(
        "DataSource",
        "DataSpec.Sql.DatabaseInformation.Host",
        frozenset({"docker", "kubernetes"}),
        "a loopback host (127.0.0.1, localhost, ::1) is the snapshot job's own container, "
        "not the server's machine,",
        "name the database by an address the job's containers reach (the host's address on "
        "the Docker network, or a Service's DNS name on Kubernetes)",
        _loopback_database,
    ),
    Rule(
        "TrainingJob",
        "InputDataConfig[].ShuffleConfig",
        ALL,
        "channel files are not shuffled",
        "leave it unset and shuffle in your training script",
        _channels(lambda c: c.ShuffleConfig is not None, "ShuffleConfig"),
    ),
    Rule(
        "TrainingJob",
        "InputDataConfig[].CompressionType",
        ALL,
        "Gzip channels are not decompressed on download",
        "leave it 'None' and read the .gz files in your script, or upload them uncompressed",
        _channels(lambda c: c.CompressionType != "None", "CompressionType"),
    ),
    Rule(
        "TrainingJob",
        "InputDataConfig[].RecordWrapperType",
        ALL,
        "RecordIO wrapping is not applied",
        "leave it 'None'",
        _channels(lambda c: c.RecordWrapperType != "None", "RecordWrapperType"),
    ),
    Rule(
        "TrainingJob",
        "OutputDataConfig.CompressionType",
        ALL,
        "the model is always packed as model.tar.gz (what endpoints load)",
        "leave it 'GZIP'",
        _flag(
            lambda s: (
                s.OutputDataConfig is not None and s.OutputDataConfig.CompressionType != "GZIP"
            ),
            "OutputDataConfig.CompressionType",
        ),
    ),
    Rule(
        "TrainingJob",
        "ResourceConfig.VolumeKmsKeyId",
        ALL,
        "the job's scratch volume is not encrypted with a KMS key",
        KMS_INSTEAD,
        _flag(lambda s: s.ResourceConfig.VolumeKmsKeyId, "ResourceConfig.VolumeKmsKeyId"),
    ),
    Rule(
        "TrainingJob",
        "ResourceConfig.KeepAlivePeriodInSeconds",
        ALL,
        "there are no warm pools to keep instances in",
        "leave it unset (or 0)",
        _flag(
            lambda s: bool(s.ResourceConfig.KeepAlivePeriodInSeconds),
            "ResourceConfig.KeepAlivePeriodInSeconds",
        ),
    ),
    Rule(
        "TrainingJob",
        "EnableInterContainerTrafficEncryption",
        ALL,
        "traffic between the instances of a job is not encrypted",
        "leave it false and encrypt in your framework (e.g. TLS in your collective library)",
        _flag(
            lambda s: s.EnableInterContainerTrafficEncryption,
            "EnableInterContainerTrafficEncryption",
        ),
    ),
    Rule(
        "TrainingJob",
        "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
        ALL,
        "metrics are not kept as time series: each MetricDefinition gives the job its final "
        "value (FinalMetricDataList)",
        "leave it false (the SDK's TensorFlow estimator sets it: pass "
        "enable_sagemaker_metrics=False)",
        _flag(
            lambda s: s.AlgorithmSpecification.EnableSageMakerMetricsTimeSeries,
            "AlgorithmSpecification.EnableSageMakerMetricsTimeSeries",
        ),
    ),
    # Every backend runs InstanceCount N as N hosts (process: N processes; Docker: N
    # containers on a per-attempt network; Kubernetes: an Indexed Job with a headless
    # Service); the distribution modes they do not set up are refused by name.
    *(
        Rule(
            "TrainingJob",
            f"HyperParameters.{name}",
            ALL,
            f"distribution {what} is not set up",
            DISTRIBUTION_INSTEAD,
            _hyperparameter(name),
        )
        for name, what in UNSUPPORTED_DISTRIBUTIONS.items()
    ),
    # Docker: no network (one host) or an internal one; Kubernetes: a NetworkPolicy, which
    # also needs a setting (REQUIREMENTS below).
    Rule(
        "TrainingJob",
        "EnableNetworkIsolation",
        frozenset({"process"}),
        "a host process cannot be cut off from the network",
        "leave it false, or run the job on the docker or kubernetes backend",
        _flag(lambda s: s.EnableNetworkIsolation, "EnableNetworkIsolation"),
    ),
    Rule(
        "TrainingJob",
        "AlgorithmSpecification.TrainingImage",
        frozenset({"process"}),
        "a host process runs no container image",
        "use script mode (sagemaker_program and sagemaker_submit_directory), "
        "AlgorithmSpecification.ContainerEntrypoint without an image, a built-in AlgorithmName "
        "(or SageMaker's image of it), or the docker or kubernetes backend",
        _flag(
            lambda s: s.AlgorithmSpecification.own_image,
            "AlgorithmSpecification.TrainingImage",
        ),
    ),
    Rule(
        "Model",
        "PrimaryContainer.Image",
        frozenset({"process"}),
        "a host process runs no container image",
        "leave Image unset (or name SageMaker's scikit-learn or built-in algorithm image) to "
        "serve the artifact with the built-in server (model_fn or a joblib/pickle model), or "
        "use the docker or kubernetes backend",
        _images,
    ),
    Rule(
        "Model",
        "EnableNetworkIsolation",
        ALL,
        "a serving replica is not cut off from the network",
        "leave it false",
        _flag(lambda s: s.EnableNetworkIsolation, "EnableNetworkIsolation"),
    ),
    Rule(
        "Model",
        "Containers",
        frozenset({"kubernetes"}),
        "a variant serves one container, so an inference pipeline cannot run",
        "use PrimaryContainer, or run pipelines on the process or docker backend",
        lambda s: ["Containers"] if len(s.serving_containers) > 1 else [],
    ),
    Rule(
        "EndpointConfig",
        "KmsKeyId",
        ALL,
        "an endpoint writes no objects (no data capture) and its replicas' storage volumes are "
        "not encrypted with a KMS key",
        "leave it unset; the model artifact stays encrypted under the key it was written with",
        _flag(lambda s: s.KmsKeyId, "KmsKeyId"),
    ),
    Rule(
        "EndpointConfig",
        "ProductionVariants[].ModelDataDownloadTimeoutInSeconds",
        ALL,
        "the model download of a replica is bounded by the startup timeout, not on its own",
        "leave it unset; ContainerStartupHealthCheckTimeoutInSeconds bounds the whole start",
        _variants(
            lambda v: v.ModelDataDownloadTimeoutInSeconds is not None,
            "ModelDataDownloadTimeoutInSeconds",
        ),
    ),
    Rule(
        "TransformJob",
        "DataCaptureConfig",
        ALL,
        "batch data capture is not supported",
        "remove DataCaptureConfig",
        _flag(lambda s: s.DataCaptureConfig is not None, "DataCaptureConfig"),
    ),
    Rule(
        "TransformJob",
        "TransformResources.VolumeKmsKeyId",
        ALL,
        "the instances' scratch volume is not encrypted with a KMS key",
        KMS_INSTEAD,
        _flag(lambda s: s.TransformResources.VolumeKmsKeyId, "TransformResources.VolumeKmsKeyId"),
    ),
    Rule(
        "TransformJob",
        "TransformResources.TransformAmiVersion",
        ALL,
        "instances run on no SageMaker machine image",
        "leave it unset",
        _flag(
            lambda s: s.TransformResources.TransformAmiVersion,
            "TransformResources.TransformAmiVersion",
        ),
    ),
    Rule(
        "TransformJob",
        "ExperimentConfig",
        ALL,
        "there are no SageMaker Experiments to associate the job with",
        "remove ExperimentConfig (tag the job instead)",
        _flag(lambda s: s.ExperimentConfig, "ExperimentConfig"),
    ),
)

_SPECS: dict[str, type[BaseModel]] = {
    "TrainingJob": CreateTrainingJobRequest,
    "Model": CreateModelRequest,
    "EndpointConfig": CreateEndpointConfigRequest,
    "TransformJob": CreateTransformJobRequest,
}


def refusals(kind: str, spec: BaseModel, backend: str) -> list[Refusal]:
    """What ``backend`` cannot do of ``spec`` (empty: it runs as SageMaker says). A backend not
    in ``BACKENDS`` (the test fake) refuses only what no backend does."""
    out: list[Refusal] = []
    for rule in RULES:
        if rule.kind != kind:
            continue
        refused = backend in rule.refused_on if backend in BACKENDS else rule.refused_on == ALL
        if not refused:
            continue
        out.extend(
            Refusal(field, backend, rule.reason, rule.instead) for field in rule.present(spec)
        )
    return out


@dataclass(frozen=True)
class Requirement:
    """A field ``backend`` honours only with ``setting`` configured."""

    kind: str
    field: str
    backend: str
    setting: str  # the environment variable that configures it
    reason: str  # why the backend needs the setting for the field
    present: Callable[[Any], list[str]]


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement(
        "TrainingJob",
        "EnableNetworkIsolation",
        "kubernetes",
        "ORCH_KUBE__NETWORK_ISOLATION_EGRESS",
        "the NetworkPolicy that isolates the job's pods also holds the orchestrator's own "
        "download and upload steps, which must reach the object store (and the Kubernetes API)",
        _flag(lambda s: s.EnableNetworkIsolation, "EnableNetworkIsolation"),
    ),
)


def unmet_requirements(
    kind: str, spec: BaseModel, backend: str, configured: Collection[str]
) -> list[Refusal]:
    """What ``backend`` cannot do of ``spec`` without a setting it lacks; ``configured``:
    the settings (environment variable names) that are set on it."""
    return [
        Refusal(
            field,
            backend,
            f"{req.reason}, and {req.setting} is not set",
            f"set {req.setting} to the egress those steps need (see docs/kubernetes.md), "
            f"or leave {req.field} false",
        )
        for req in REQUIREMENTS
        if req.kind == kind and req.backend == backend and req.setting not in configured
        for field in req.present(spec)
    ]


def rules_table() -> Iterator[tuple[str, str, dict[str, bool]]]:
    """(kind, field, {backend: honoured}) for every rule: the docs' table."""
    for rule in RULES:
        yield rule.kind, rule.field, {b: b not in rule.refused_on for b in BACKENDS}


def problems_of(
    kind: str, spec: BaseModel, backend: str, configured: Collection[str]
) -> list[Refusal]:
    """Everything ``backend`` cannot carry out of ``spec``: the refusal table, then what needs
    a setting the backend lacks."""
    return refusals(kind, spec, backend) + unmet_requirements(kind, spec, backend, configured)


@dataclass(frozen=True)
class Isolation:
    """What the user's code (a training script, a model server) can reach on a backend."""

    backend: str
    isolated: bool  # True: it sees none of the control plane's files or secrets
    how: str


# The job's own credential (``controller.plan.credentials``) is handed to the user's code on
# every backend; only where it is isolated is that credential all it can use.
ISOLATION = (
    Isolation(
        "process",
        False,
        "the user's code runs as the server's own OS user, a child of the job's supervisor: "
        "the server's environment reaches it without ORCH_* and AWS credential variables, "
        "but it can read the server's files (the keyring, the credentials file, the state "
        "database, other jobs' directories). For a single user or trusted code only",
    ),
    Isolation(
        "docker",
        True,
        "a hardened container (non-root, no capabilities, read-only root) that mounts only "
        "its job's /opt/ml (a replica: its model and code, read-only); the data is downloaded "
        "and uploaded on the host, so the object store and the keyring never enter it; its "
        "environment is the SageMaker contract, the job's Environment and its credential",
    ),
    Isolation(
        "kubernetes",
        True,
        "the user's container mounts no Secret and no service-account token (the keyring and "
        "the object-store credentials are mounted only into the orchestrator's own step "
        "containers of the pod); its environment is the SageMaker contract and the job's "
        "Environment",
    ),
)
