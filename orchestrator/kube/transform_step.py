"""``python -m orchestrator.kube.transform_step``: the runner container of a transform pod.

Its whole configuration is the JSON in ``ORCH_TRANSFORM_STEP`` (``transforms.TransformStepConfig``:
the instance, the object store, the transform settings, the sidecar's URL); the keyring is the
mounted Secret (``--keyring``), the store's keys come from the environment. It runs the instance
runner (``transformer.instance.main_with``) against the model server sidecar, which the kubelet
started before it and stops after it, and exits with the runner's code.

A failure is said twice: in the job's scratch space (the runner's result record) and in this
container's termination message (``FailureReason.encode``, as the training steps do), so the
operator knows why even when it cannot read the store. A failure before the runner starts (no
or a bad configuration, a keyring that cannot be read) is said in the termination message only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pydantic import ValidationError as PydanticValidationError

from orchestrator.errors import OrchestratorError
from orchestrator.kube.steps import open_store, report
from orchestrator.kube.transforms import (
    KEYRING_FILE,
    STEP_ENV,
    TERMINATION_LOG,
    TransformStepConfig,
)
from orchestrator.objects import ObjectStore
from orchestrator.resources.failures import FailureReason, client_error, internal_error
from orchestrator.transformer.driver import InstanceConfig
from orchestrator.transformer.instance import main_with
from orchestrator.transformer.scratch import TransformScratch
from orchestrator.transformer.server import ExternalServer


class StepConfigError(Exception):
    """The runner's configuration is missing or wrong (a ``ClientError``)."""

    def __init__(self, reason: FailureReason) -> None:
        super().__init__(reason.message)
        self.reason = reason


def read_config(raw: str | None) -> tuple[TransformStepConfig, InstanceConfig]:
    """The step's and the instance's configuration; a ``ClientError`` naming what is wrong."""
    if not raw:
        raise StepConfigError(
            client_error(f"{STEP_ENV} is not set: the runner is started by the operator's Job")
        )
    try:
        cfg = TransformStepConfig.model_validate_json(raw)
        instance = InstanceConfig.model_validate(cfg.instance)
    except PydanticValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or STEP_ENV}: {err['msg']}"
            for err in e.errors()
        )
        raise StepConfigError(
            client_error(f"{STEP_ENV} is not a valid configuration: {problems}")
        ) from e
    return cfg, instance


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.kube.transform_step")
    parser.add_argument("--keyring", type=Path, default=Path(KEYRING_FILE))
    parser.add_argument("--termination-log", type=Path, default=Path(TERMINATION_LOG))
    args = parser.parse_args(argv)
    try:
        cfg, instance = read_config(os.environ.get(STEP_ENV))
        store = open_store(
            cfg.object_store_url,
            args.keyring,
            s3_endpoint_url=cfg.s3_endpoint_url,
            s3_region=cfg.s3_region,
            chunk_size=cfg.chunk_size,
            write_key=instance.Spec.TransformOutput.KmsKeyId,
        )
    except StepConfigError as e:
        return report(args.termination_log, e.reason, 1)
    except (OrchestratorError, OSError) as e:
        what = e.message if isinstance(e, OrchestratorError) else f"{type(e).__name__}: {e}"
        return report(args.termination_log, internal_error(f"opening the object store: {what}"), 1)
    code = main_with(instance, store, ExternalServer(cfg.server_url), cfg.transform)
    if code != 0:
        said = _failure_of(store, instance)
        if said is not None:
            report(args.termination_log, said, code)
    return code


def _failure_of(store: ObjectStore, instance: InstanceConfig) -> FailureReason | None:
    """Why this attempt failed, as its result record says (None: it says nothing)."""
    try:
        result = TransformScratch(store, instance.Name).read_result(instance.Instance)
    except (OrchestratorError, OSError, ValueError):
        return None
    if result is None or result.Attempt != instance.Attempt:
        return None
    return result.Failure


if __name__ == "__main__":
    raise SystemExit(main())
