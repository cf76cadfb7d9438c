"""Distributed training as the SageMaker SDK asks for it: hyperparameters. Pure.

``Estimator(distribution={"torch_distributed": {"enabled": True}})`` (PyTorch) and
``{"multi_worker_mirrored_strategy": {"enabled": True}}`` (TensorFlow) reach the job as the
hyperparameters below, set to ``json.dumps(True)``; ``training.contract`` turns them into the
framework's variables. The SDK's other modes are named here so that they are refused by name
(``controller.plan.support``), never ignored.
"""

from __future__ import annotations

import json

from orchestrator.resources.training import (
    MULTI_WORKER_MIRRORED,
    TORCH_DISTRIBUTED,
    CreateTrainingJobRequest,
)

DISTRIBUTIONS = {TORCH_DISTRIBUTED: "torch_distributed", MULTI_WORKER_MIRRORED: "mwms"}
# The SDK's other distribution hyperparameters: what each is, and what to use instead.
UNSUPPORTED_DISTRIBUTIONS = {
    "sagemaker_distributed_dataparallel_enabled": "smdistributed dataparallel",
    "sagemaker_mpi_enabled": "mpi (and smdistributed modelparallel, which runs on it)",
    "sagemaker_pytorch_ddp_enabled": "pytorchddp (launched with mpirun)",
    "sagemaker_pytorch_xla_multi_worker_enabled": "pytorchxla",
    "sagemaker_parameter_server_enabled": "parameter_server",
}
DISTRIBUTION_INSTEAD = (
    'use distribution={"torch_distributed": {"enabled": True}} (PyTorch: MASTER_ADDR, RANK, '
    'WORLD_SIZE are set) or {"multi_worker_mirrored_strategy": {"enabled": True}} '
    "(TensorFlow: TF_CONFIG is set)"
)
# The client's ``distribution=`` keys (the SDK's spelling) -> the hyperparameter each sets.
DISTRIBUTION_KEYS = {
    "torch_distributed": TORCH_DISTRIBUTED,
    "multi_worker_mirrored_strategy": MULTI_WORKER_MIRRORED,
    "smdistributed": "sagemaker_distributed_dataparallel_enabled",
    "mpi": "sagemaker_mpi_enabled",
    "pytorchddp": "sagemaker_pytorch_ddp_enabled",
    "pytorchxla": "sagemaker_pytorch_xla_multi_worker_enabled",
    "parameter_server": "sagemaker_parameter_server_enabled",
}


def enabled(spec: CreateTrainingJobRequest, name: str) -> bool:
    """Whether hyperparameter ``name`` is set true (the SDK writes ``json.dumps(True)``)."""
    raw = spec.HyperParameters.get(name)
    if raw is None:
        return False
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return value is True or (isinstance(value, str) and value.lower() == "true")


def distribution_of(spec: CreateTrainingJobRequest) -> str | None:
    """``"torch_distributed"``, ``"mwms"`` or None: which framework's variables a job gets."""
    for name, kind in DISTRIBUTIONS.items():
        if enabled(spec, name):
            return kind
    return None
