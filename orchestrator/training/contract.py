"""The SageMaker training contract on a local directory: paths, config files, environment.

A job's root plays the part of ``/opt/ml``: ``input/config/*.json``, ``input/data/<channel>/``,
``model/``, ``output/failure``, ``output/data/``, ``checkpoints/`` (or the directory under it that
``CheckpointConfig.LocalPath`` names under ``/opt/ml``), ``code/``. The root's path
is given to the user's process in ``ORCH_ML_ROOT`` (and each path in the ``SM_*`` variables the
SageMaker training toolkit defines), so scripts written for SageMaker run unchanged.

A job of ``InstanceCount`` N runs on N hosts named ``algo-1`` ... ``algo-N`` (``Host``); each
host's ``resourceconfig.json`` and ``SM_CURRENT_HOST`` name it, and a channel distributed
``ShardedByS3Key`` gives each host its share of the channel's objects (``shard``).

Distributed training (``distributed_environment``), chosen by the hyperparameters the SageMaker
SDK sets for ``distribution=`` (``"true"``, JSON): ``sagemaker_torch_distributed_enabled`` gives
each host torchrun's variables (one process per host: ``MASTER_ADDR`` is algo-1's address,
``WORLD_SIZE`` the host count, ``RANK``/``NODE_RANK``/``GROUP_RANK`` the host's index,
``LOCAL_RANK`` 0 of ``LOCAL_WORLD_SIZE`` 1); ``sagemaker_multi_worker_mirrored_strategy_enabled``
gives ``TF_CONFIG`` (every host a worker at ``address:port``, this one's index). Addresses and
ports are the backend's (``Rendezvous``): 127.0.0.1 and free ports on the process backend, the
host names on Docker and Kubernetes. The SDK's other modes are refused by name
(``UNSUPPORTED_DISTRIBUTIONS``, in ``controller.plan.support``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.algorithms.hyperparameters import (
    ALGORITHMS,
    metric_definitions,
    parse_hyperparameters,
)
from orchestrator.errors import ValidationError
from orchestrator.resources.datasources import SNAPSHOT_ALGORITHM
from orchestrator.resources.distribution import distribution_of
from orchestrator.resources.images import stand_in
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.resources.training import (
    PROGRAM_HYPERPARAMETER,
    SUBMIT_DIR_HYPERPARAMETER,
    Channel,
    CreateTrainingJobRequest,
)

ML_ROOT_ENV = "ORCH_ML_ROOT"
# The server's AWS credentials in any form boto3 reads them from (besides ``ORCH_*``): never
# handed to the user's code, which gets its job's own credential instead.
HOST_SECRET_ENV = frozenset(
    {
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
        "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_ROLE_SESSION_NAME",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
        "VAULT_TOKEN",
    }
)  # fmt: skip
# Which built-in algorithm ``python -m orchestrator.algorithms.train`` runs.
ALGORITHM_ENV = "ORCH_ALGORITHM"
EVALUATION_FILE = "evaluation.json"
EVALUATION_SCORES_FILE = "evaluation_scores.json"
"""Files of ``model/`` uploaded beside model.tar.gz too, so the API reads them as they are:
any job's evaluation, a built-in binary classifier's scores per split."""
T = TypeVar("T")


def host_names(count: int) -> list[str]:
    """SageMaker's host names of a job on ``count`` instances."""
    return [f"algo-{k}" for k in range(1, count + 1)]


@dataclass(frozen=True)
class Host:
    """One host of a job: ``index`` (0-based) of ``count``; its name is ``algo-<index+1>``."""

    index: int = 0
    count: int = 1

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"a job runs on at least one host, not {self.count}")
        if not 0 <= self.index < self.count:
            raise ValueError(
                f"host index {self.index} is out of range: a job with InstanceCount="
                f"{self.count} has hosts 0..{self.count - 1} (algo-1..algo-{self.count})"
            )

    @property
    def name(self) -> str:
        return f"algo-{self.index + 1}"

    @property
    def names(self) -> list[str]:
        return host_names(self.count)

    @property
    def first(self) -> bool:
        """The host that uploads the model (algo-1), as on SageMaker."""
        return self.index == 0


def hosts_of(spec: CreateTrainingJobRequest) -> list[Host]:
    count = spec.ResourceConfig.InstanceCount
    return [Host(i, count) for i in range(count)]


def shard(items: Sequence[T], host: Host) -> list[T]:
    """``host``'s share of a ``ShardedByS3Key`` channel: every ``count``-th item of the sorted
    keys, from its index on (about 1/N each; a host past the number of items gets none)."""
    return list(items[host.index :: host.count])


def sharded(channel: Channel) -> bool:
    return channel.DataSource.S3DataSource.S3DataDistributionType == "ShardedByS3Key"


@dataclass(frozen=True)
class MlPaths:
    root: Path
    # The checkpoint directory relative to the root (``CheckpointConfig.LocalPath`` under
    # ``/opt/ml``): see ``for_spec``.
    checkpoints: str = "checkpoints"

    def for_spec(self, spec: CreateTrainingJobRequest) -> MlPaths:
        """These paths with the job's checkpoint directory (its ``LocalPath``)."""
        ckpt = spec.CheckpointConfig
        return self if ckpt is None else replace(self, checkpoints=ckpt.subpath)

    @property
    def config_dir(self) -> Path:
        return self.root / "input" / "config"

    @property
    def data_dir(self) -> Path:
        return self.root / "input" / "data"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.root / "output" / "data"

    @property
    def failure_file(self) -> Path:
        return self.root / "output" / "failure"

    @property
    def checkpoint_dir(self) -> Path:
        return self.root / self.checkpoints

    @property
    def code_dir(self) -> Path:
        return self.root / "code"

    def make(self, channels: list[str]) -> None:
        for d in (self.config_dir, self.model_dir, self.output_data_dir, self.checkpoint_dir):
            d.mkdir(parents=True, exist_ok=True)
        for c in channels:
            self.channel_dir(c).mkdir(parents=True, exist_ok=True)


def decode_hyperparameter(value: str) -> Any:
    """SageMaker's SDK JSON-encodes values ('"train.py"', '0.1'); plain strings pass through."""
    try:
        return json.loads(value)
    except (json.JSONDecodeError, ValueError):
        return value


def user_hyperparameters(spec: CreateTrainingJobRequest) -> dict[str, Any]:
    return {
        k: decode_hyperparameter(v)
        for k, v in spec.HyperParameters.items()
        if not k.startswith("sagemaker_")
    }


def builtin_algorithm(spec: CreateTrainingJobRequest) -> str | None:
    """The built-in algorithm a job runs: AlgorithmName naming one, with no image or entrypoint,
    or SageMaker's image of one as the TrainingImage (``resources.images``)."""
    algo = spec.AlgorithmSpecification
    if algo.ContainerEntrypoint:
        return None
    if algo.TrainingImage:
        image = stand_in(algo.TrainingImage)
        return image.name if image is not None and image.kind == "builtin" else None
    if algo.AlgorithmName == SNAPSHOT_ALGORITHM:
        return SNAPSHOT_ALGORITHM  # a data source's snapshot (orchestrator.datasources)
    return algo.AlgorithmName if algo.AlgorithmName in ALGORITHMS else None


def metric_patterns(spec: CreateTrainingJobRequest) -> list[tuple[str, re.Pattern[str]]]:
    """What a job's output lines are searched for: its ``MetricDefinitions`` and, for a
    built-in algorithm, the algorithm's own (captured without the user naming them)."""
    definitions = [(m.Name, m.Regex) for m in spec.AlgorithmSpecification.MetricDefinitions]
    builtin = builtin_algorithm(spec)
    if builtin is not None and builtin != SNAPSHOT_ALGORITHM:
        named = {name for name, _ in definitions}
        predictor = decode_hyperparameter(spec.HyperParameters.get("predictor_type", ""))
        definitions += [
            (d["Name"], d["Regex"])
            for d in metric_definitions(builtin, str(predictor) or None)
            if d["Name"] not in named
        ]
    return [(name, re.compile(regex)) for name, regex in definitions]


def read_metrics(
    line: str, patterns: Sequence[tuple[str, re.Pattern[str]]], into: dict[str, float]
) -> None:
    """The metrics one output line carries, into ``into`` (a later value replaces an earlier
    one, so what is left is each metric's last value: SageMaker's final metric)."""
    for name, pattern in patterns:
        m = pattern.search(line)
        if m:
            with contextlib.suppress(ValueError, IndexError):
                into[name] = float(m.group(1))


def check_builtin_algorithm(spec: CreateTrainingJobRequest) -> None:
    """Fail fast (before any job exists) on an unknown built-in or a bad hyperparameter."""
    algo = spec.AlgorithmSpecification
    builtin = builtin_algorithm(spec)
    if builtin == SNAPSHOT_ALGORITHM:
        return  # made by the data source's planner; the snapshot step checks its own
    if builtin is not None:
        parse_hyperparameters(builtin, dict(spec.HyperParameters))
        return
    if not algo.AlgorithmName or algo.TrainingImage or algo.ContainerEntrypoint:
        return
    if algo.AlgorithmName not in ALGORITHMS:
        raise ValidationError(
            f"AlgorithmSpecification.AlgorithmName: {algo.AlgorithmName!r} is not a built-in "
            f"algorithm; built in: {', '.join(ALGORITHMS)} (or set TrainingImage to run your "
            "own container)",
            field="AlgorithmSpecification.AlgorithmName",
        )
    parse_hyperparameters(algo.AlgorithmName, dict(spec.HyperParameters))


def resource_config(
    spec: CreateTrainingJobRequest, host: Host, interface: str = "lo"
) -> dict[str, Any]:
    """``resourceconfig.json`` of one host, in SageMaker's shape."""
    return {
        "current_host": host.name,
        "current_instance_type": spec.ResourceConfig.InstanceType,
        "hosts": host.names,
        "network_interface_name": interface,
    }


def write_config(
    paths: MlPaths,
    spec: CreateTrainingJobRequest,
    host: Host | None = None,
    interface: str = "lo",
) -> None:
    host = host or Host()
    mode = spec.AlgorithmSpecification.TrainingInputMode
    files = {
        "hyperparameters.json": dict(spec.HyperParameters),
        "inputdataconfig.json": {
            c.ChannelName: {
                "ContentType": c.ContentType,
                "TrainingInputMode": c.InputMode or mode,
                "S3DistributionType": c.DataSource.S3DataSource.S3DataDistributionType,
                "RecordWrapperType": c.RecordWrapperType,
            }
            for c in spec.InputDataConfig
        },
        "resourceconfig.json": resource_config(spec, host, interface),
    }
    for name, doc in files.items():
        (paths.config_dir / name).write_text(json.dumps(doc, indent=2))


def program_of(spec: CreateTrainingJobRequest) -> str | None:
    raw = spec.HyperParameters.get(PROGRAM_HYPERPARAMETER)
    return None if raw is None else str(decode_hyperparameter(raw))


def submit_dir_of(spec: CreateTrainingJobRequest) -> str | None:
    raw = spec.HyperParameters.get(SUBMIT_DIR_HYPERPARAMETER)
    return None if raw is None else str(decode_hyperparameter(raw))


def script_args(spec: CreateTrainingJobRequest) -> list[str]:
    args: list[str] = []
    for k, v in user_hyperparameters(spec).items():
        args += [f"--{k}", v if isinstance(v, str) else json.dumps(v)]
    return args


def host_environment(host: Host) -> dict[str, str]:
    return {"SM_CURRENT_HOST": host.name, "SM_HOSTS": json.dumps(host.names)}


# --- distributed training ---------------------------------------------------------------------
# The rendezvous port where every host has an address of its own (Docker, Kubernetes):
# torchrun's default master port, also each TensorFlow worker's.
RENDEZVOUS_PORT = 29500


@dataclass(frozen=True)
class Rendezvous:
    """Where the hosts of one attempt reach each other: host i at ``addresses[i]``; its
    TensorFlow worker listens on ``ports[i]``, and host 0's ``ports[0]`` is the torch master."""

    addresses: tuple[str, ...]
    ports: tuple[int, ...]
    interface: str = "lo"  # resourceconfig.json's network_interface_name

    @classmethod
    def by_name(cls, count: int, interface: str = "eth0") -> Rendezvous:
        """Every host its own name and network (Docker, Kubernetes): fixed ports."""
        return cls(tuple(host_names(count)), (RENDEZVOUS_PORT,) * count, interface)


def distributed_environment(
    spec: CreateTrainingJobRequest,
    count: int,
    rank: str,
    rendezvous: Rendezvous,
) -> dict[str, str]:
    """The framework variables of the host whose index is ``rank`` (text: on Kubernetes it is
    a ``$(VAR)`` reference the kubelet expands), or none when no distribution is enabled."""
    kind = distribution_of(spec)
    if kind == "torch_distributed":
        return {
            "MASTER_ADDR": rendezvous.addresses[0],
            "MASTER_PORT": str(rendezvous.ports[0]),
            "WORLD_SIZE": str(count),
            "RANK": rank,
            "NODE_RANK": rank,
            "GROUP_RANK": rank,
            "LOCAL_RANK": "0",
            "LOCAL_WORLD_SIZE": "1",
            # As SageMaker's toolkit does: the collectives use the hosts' interface.
            "NCCL_SOCKET_IFNAME": rendezvous.interface,
            "GLOO_SOCKET_IFNAME": rendezvous.interface,
        }
    if kind == "mwms":
        workers = [f"{a}:{p}" for a, p in zip(rendezvous.addresses, rendezvous.ports, strict=True)]
        cluster = json.dumps({"worker": workers})
        # Built as text so that ``rank`` may be a reference expanded later.
        tf_config = f'{{"cluster": {cluster}, "task": {{"type": "worker", "index": {rank}}}}}'
        return {"TF_CONFIG": tf_config}
    return {}


def host_distributed_environment(
    spec: CreateTrainingJobRequest, host: Host, rendezvous: Rendezvous
) -> dict[str, str]:
    return distributed_environment(spec, host.count, str(host.index), rendezvous)


def user_environment(
    paths: MlPaths,
    spec: CreateTrainingJobRequest,
    base: dict[str, str],
    *,
    host: Host | None,
    distributed: dict[str, str] | None = None,
    credentials: dict[str, str] | None = None,
) -> dict[str, str]:
    """The user process's environment: the host's, minus our secrets (every ``ORCH_*``
    variable and the AWS credential variables, ``HOST_SECRET_ENV``), plus the contract.
    ``credentials``: the job's own credential (``api.jobcreds``), the only one it gets; its
    ``AWS_*`` part is left out when the job's ``Environment`` names AWS credentials or an
    endpoint of its own (so a script that talks to AWS itself keeps working).
    ``host`` None: the hosts of the job are named (``SM_HOSTS``) but not which one this is
    (one pod template for every host: the current host is only known in the pod).
    ``distributed``: the framework variables (``distributed_environment``); the job's own
    ``Environment`` still wins over them."""
    count = spec.ResourceConfig.InstanceCount
    paths = paths.for_spec(spec)
    env = {k: v for k, v in base.items() if not k.startswith("ORCH_") and k not in HOST_SECRET_ENV}
    itype = INSTANCE_TYPES[spec.ResourceConfig.InstanceType]
    channels = [c.ChannelName for c in spec.InputDataConfig]
    hps = user_hyperparameters(spec)
    env.update(
        {
            ML_ROOT_ENV: str(paths.root),
            "SM_MODEL_DIR": str(paths.model_dir),
            "SM_INPUT_DIR": str(paths.root / "input"),
            "SM_INPUT_CONFIG_DIR": str(paths.config_dir),
            "SM_OUTPUT_DIR": str(paths.output_dir),
            "SM_OUTPUT_DATA_DIR": str(paths.output_data_dir),
            "SM_CHECKPOINT_DIR": str(paths.checkpoint_dir),
            "SM_CHANNELS": json.dumps(channels),
            "SM_HPS": json.dumps(hps),
            "SM_USER_ARGS": json.dumps(script_args(spec)),
            "SM_HOSTS": json.dumps(host_names(count)),
            "SM_NUM_CPUS": str(itype.vcpus or os.cpu_count() or 1),
            "SM_NUM_GPUS": str(itype.gpus),
            "SM_MODULE_DIR": str(paths.code_dir),
            "SM_LOG_LEVEL": "20",
            "PYTHONUNBUFFERED": "1",
        }
    )
    if host is not None:
        env.update(host_environment(host))
    for c in channels:
        env[f"SM_CHANNEL_{c.upper().replace('-', '_').replace('.', '_')}"] = str(
            paths.channel_dir(c)
        )
    for k, v in hps.items():
        env[f"SM_HP_{k.upper().replace('-', '_')}"] = v if isinstance(v, str) else json.dumps(v)
    program = program_of(spec)
    if program:
        env["SM_USER_ENTRY_POINT"] = program
        env["SM_MODULE_NAME"] = program.removesuffix(".py")
    env.update(distributed or {})
    own = credentials or {}
    if HOST_SECRET_ENV & spec.Environment.keys():
        # The job brings its own AWS credentials or endpoint: ours would only be mixed in.
        own = {k: v for k, v in own.items() if not k.startswith("AWS_")}
    env.update(own)
    env.update(spec.Environment)
    return env
