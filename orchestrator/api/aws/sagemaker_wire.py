"""SageMaker's requests and responses on the wire, over the resource models.

Requests carry SageMaker's members only (``sagemaker_model``, from botocore's model): a member
SageMaker does not have is refused as unknown; one SageMaker has but this server does not take
is a ``ValidationException`` that names it and says so; a few that the SageMaker Python SDK
sends by default are checked and dropped where their value has no effect here (``DEFAULTS``,
listed in docs/sagemaker-compat.md). The requests' members then become the resource models
(SageMaker's field names), validated with every bad field named.

Responses carry SageMaker's members only: the project's extensions and bookkeeping (status
conditions, attempts, routes, ...) stay in the REST API; an empty optional list or map is left
out, as SageMaker leaves out what it has no value for; the ``local`` instance types, which
SageMaker's enums do not have, are left out too. Timestamps stay datetimes (the JSON protocol
writes them as epoch seconds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

from orchestrator.api.aws.sagemaker_model import OPERATIONS, REQUIRED, STRUCTURES
from orchestrator.errors import ValidationError
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.validation import parse_spec

M = TypeVar("M", bound=BaseModel)
COMPAT = "docs/sagemaker-compat.md"


def request_structure(operation: str) -> str:
    structure = OPERATIONS[operation][0]
    assert structure is not None, f"{operation} takes no request"
    return structure


def response_structure(operation: str) -> str | None:
    return OPERATIONS[operation][1]


def _member(structure: str, path: str) -> bool:
    """Whether ``path`` (``A.B[0].C``, from the structure) names one of SageMaker's members."""
    current: str | None = structure
    for part in path.split("."):
        name = part.partition("[")[0]
        members = STRUCTURES.get(current or "", {})
        if name not in members:
            return False
        current = (members[name] or "").strip("[]{}") or None
    return True


def _foreign(doc: Any, ref: str | None, path: str) -> list[str]:
    """Paths in ``doc`` that are not members of SageMaker's structure ``ref``."""
    if ref is None:
        return []
    if ref.startswith("["):
        items = doc if isinstance(doc, list) else []
        return [
            p for i, item in enumerate(items) for p in _foreign(item, ref[1:-1], f"{path}[{i}]")
        ]
    if ref.startswith("{"):
        values = doc if isinstance(doc, dict) else {}
        return [p for k, v in values.items() for p in _foreign(v, ref[1:-1], f"{path}[{k!r}]")]
    if not isinstance(doc, dict):
        return []
    members = STRUCTURES[ref]
    out: list[str] = []
    for key, value in doc.items():
        where = f"{path}.{key}" if path else key
        if key not in members:
            out.append(where)
        else:
            out += _foreign(value, members[key], where)
    return out


def check_members(params: dict[str, Any], operation: str) -> None:
    """Refuse a request member SageMaker's ``operation`` does not have."""
    foreign = _foreign(params, request_structure(operation), "")
    if foreign:
        raise ValidationError(
            "; ".join(f"{p}: not a member of SageMaker's {operation} request" for p in foreign),
            field=foreign[0],
        )


def parse(model: type[M], params: dict[str, Any], operation: str) -> M:
    """``params`` (SageMaker's members of ``operation``) as ``model``."""
    check_members(params, operation)
    structure = request_structure(operation)

    def unknown(path: str) -> str | None:
        if _member(structure, path):
            return f"a SageMaker field this server does not support; leave it out (see {COMPAT})"
        return None

    return parse_spec(model, params, unknown=unknown)


# --- our extensions, carried by tags ----------------------------------------------------------
PRIORITY_TAG = "orchestrator:priority"


def with_priority(req: CreateTrainingJobRequest) -> CreateTrainingJobRequest:
    """The job's ``Priority`` from its tag ``orchestrator:priority`` (SageMaker's request has
    no such member: a tag carries it, so the SDK sends it unchanged)."""
    value = next((t.Value for t in req.Tags if t.Key == PRIORITY_TAG), None)
    if value is None:
        return req
    try:
        priority = int(value.strip())
    except ValueError:
        priority = None
    if priority is None or not -1000 <= priority <= 1000:
        raise ValidationError(
            f"Priority: the tag {PRIORITY_TAG} must be an integer from -1000 to 1000 (higher "
            f"runs first), not {value!r}",
            field="Priority",
        )
    return req.model_copy(update={"Priority": priority})


# --- fields the SDK sends by default ---------------------------------------------------------
@dataclass(frozen=True)
class Default:
    """A request member the SageMaker Python SDK sends by default: ``accept`` checks its value
    (returns nothing when it has no effect here, raises otherwise); ``note`` is what the
    compatibility page says about it."""

    operation: str
    member: str
    accept: Callable[[Any], None]
    note: str


def _debug_hook(value: Any) -> None:
    doc = value if isinstance(value, dict) else {}
    if doc.get("CollectionConfigurations") or doc.get("HookParameters"):
        raise ValidationError(
            "DebugHookConfig: no debugger hook runs here, so CollectionConfigurations and "
            "HookParameters cannot be honoured; leave them out (the SDK's default sends "
            "neither), or pass debugger_hook_config=False to the estimator",
            field="DebugHookConfig.CollectionConfigurations",
        )


def _profiler(value: Any) -> None:
    doc = value if isinstance(value, dict) else {}
    for member in ("ProfilingIntervalInMilliseconds", "ProfilingParameters"):
        if doc.get(member) is not None:
            raise ValidationError(
                f"ProfilerConfig.{member}: the SageMaker Debugger profiler does not run here; "
                "the job's CPU, memory, disk and GPU use are sampled per host anyway (GET "
                "/api/v1/training-jobs/NAME/metrics, CloudWatch /aws/sagemaker/TrainingJobs, "
                "Prometheus orch_job_*). Leave it out, or pass disable_profiler=True to the "
                "estimator",
                field=f"ProfilerConfig.{member}",
            )


def _retain_variants(value: Any) -> None:
    if value:
        raise ValidationError(
            "RetainAllVariantProperties: an update starts the new EndpointConfig's variants "
            "with their own weights and counts here; leave it false (then call "
            "UpdateEndpointWeightsAndCapacities), or put the weights and counts in the new "
            "EndpointConfig",
            field="RetainAllVariantProperties",
        )


DEFAULTS: tuple[Default, ...] = (
    Default(
        "CreateTrainingJob", "DebugHookConfig", _debug_hook,
        "accepted without CollectionConfigurations and HookParameters (the SDK's default) and "
        "has no effect: no debugger hook runs. On SageMaker that default only does something "
        "in containers with smdebug (its TensorFlow, PyTorch, MXNet and XGBoost images), "
        "which this server does not run",
    ),
    Default(
        "CreateTrainingJob", "ProfilerConfig", _profiler,
        "accepted with S3OutputPath and DisableProfiler (the SDK's default); "
        "DisableProfiler: true is SageMaker's own no-op. With DisableProfiler false SageMaker "
        "writes system-metric files under S3OutputPath; here nothing is written there, and "
        "the job's CPU, memory, disk and GPU use are sampled per host instead (CloudWatch "
        "/aws/sagemaker/TrainingJobs by Host, the job's metrics, Prometheus orch_job_*)",
    ),
    Default(
        "UpdateEndpoint", "RetainAllVariantProperties", _retain_variants,
        "accepted when false (SageMaker's default: the new config's own weights and counts); "
        "true is refused",
    ),
)  # fmt: skip


def take_defaults(params: dict[str, Any], operation: str) -> dict[str, Any]:
    """``params`` without the SDK's default members of ``operation``, each checked."""
    out = dict(params)
    for d in DEFAULTS:
        if d.operation == operation and d.member in out:
            d.accept(out.pop(d.member))
    return out


# --- responses ------------------------------------------------------------------------------
def outgoing(doc: dict[str, Any], structure: str) -> dict[str, Any]:
    """``doc`` with SageMaker's members of ``structure`` only."""
    members = STRUCTURES[structure]
    required = REQUIRED.get(structure, ())
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key not in members or value is None:
            continue
        if key == "InstanceType" and str(value).startswith("local"):
            continue  # not one of SageMaker's instance types
        sent = _outgoing_value(value, members[key])
        if sent in ({}, []) and key not in required:
            continue
        out[key] = sent
    return out


def _outgoing_value(value: Any, ref: str | None) -> Any:
    if ref is None:
        return value
    if ref.startswith("[") and isinstance(value, list):
        return [_outgoing_value(v, ref[1:-1]) for v in value]
    if ref.startswith("{") and isinstance(value, dict):
        return {k: _outgoing_value(v, ref[1:-1]) for k, v in value.items()}
    if isinstance(value, dict):
        return outgoing(value, ref)
    return value


def dump(model: BaseModel) -> dict[str, Any]:
    """A resource model as a document (datetimes kept; no None values)."""
    out: dict[str, Any] = model.model_dump(mode="python", exclude_none=True)
    return out
