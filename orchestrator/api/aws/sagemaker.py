"""SageMaker's control-plane API (awsJson1_1, ``X-Amz-Target: SageMaker.<Operation>``) as one
table over ``ControlPlane``.

Each row names the operation (its policy action is SageMaker's, ``sagemaker:<Operation>``, on
the ARN of the resource its ``<Kind>Name`` member names), the function that turns the
request's members into a service call and its result into the response's members, and a note
for docs/sagemaker-compat.md (``python -m orchestrator.api.aws.compat``). Requests and
responses pass through ``sagemaker_wire`` (SageMaker's members only; the resource models,
SageMaker's field names, validate the rest with the field named).

SageMaker's words where clients depend on them: a missing resource is a ``ValidationException``
("Requested resource not found." for a training job, "Could not find requested job with name
<name>" for a transform job, 'Could not find endpoint "<arn>".' for the others: botocore's
waiters and the SDK match on them); a create with a name in use is ``ResourceInUse`` for a
training or transform job and a ``ValidationException`` "Cannot create already existing ..."
for the others (the SDK's ``create_model`` reads that as "use the existing one"),
even when the spec is the same: unlike the REST API, SageMaker has no idempotent create.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, ClassVar

from pydantic import Field, StringConstraints

from orchestrator.access import Principal
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.jsonrpc import JsonService, Operation, Target, no_resource
from orchestrator.api.aws.sagemaker_wire import (
    check_members,
    dump,
    outgoing,
    parse,
    take_defaults,
    with_priority,
)
from orchestrator.api.service import ControlPlane, ListQuery
from orchestrator.api.tuning import TrialQuery
from orchestrator.controller.reconciler import training_output_uri
from orchestrator.errors import ConflictError, LimitExceededError, NotFoundError, ValidationError
from orchestrator.iam import OWNER_TAG, TagSource
from orchestrator.resources.common import Spec, Tag, TagList
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointStatus,
    UpdateEndpointRequest,
    UpdateEndpointWeightsAndCapacitiesRequest,
)
from orchestrator.resources.kinds import (
    ENDPOINT,
    ENDPOINT_CONFIG,
    HYPER_PARAMETER_TUNING_JOB,
    MODEL,
    TRAINING_JOB,
    TRANSFORM_JOB,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.search import SearchRequest
from orchestrator.resources.training import (
    RETRYABLE_EXIT_CODES_TAG,
    CreateTrainingJobRequest,
    parse_exit_codes,
)
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.resources.tuning import TUNING_JOB_TAG, CreateHyperParameterTuningJobRequest

Params = dict[str, Any]
Handler = Callable[[ControlPlane, Params], dict[str, Any]]
TRAINING_JOB_MISSING = "Requested resource not found."
# What each kind is called in SageMaker's messages ('Could not find endpoint configuration').
_WORDS = {
    MODEL.name: "model",
    ENDPOINT_CONFIG.name: "endpoint configuration",
    ENDPOINT.name: "endpoint",
}
# Jobs: a name in use is ResourceInUse, in these words.
_JOB_WORDS = {TRAINING_JOB.name: "training job", TRANSFORM_JOB.name: "transform job"}


@dataclass(frozen=True)
class Row:
    name: str
    handler: Handler
    note: str = ""

    @property
    def action(self) -> str:
        """The policy action: SageMaker's own, named for the operation."""
        return f"sagemaker:{self.name}"


@contextmanager
def _missing(message: str) -> Iterator[None]:
    """A missing resource, in SageMaker's words."""
    try:
        yield
    except NotFoundError as e:
        raise AwsError("ValidationException", message) from e


@contextmanager
def _refused_as_validation() -> Iterator[None]:
    """A state conflict, where SageMaker's model has no ResourceInUse for the operation."""
    try:
        yield
    except (ConflictError, LimitExceededError) as e:
        raise AwsError("ValidationException", e.message) from e


def _transform_missing(name: str) -> str:
    return f"Could not find requested job with name {name}"


def _not_found(cp: ControlPlane, kind: str, name: str) -> str:
    if kind == TRAINING_JOB.name:
        return TRAINING_JOB_MISSING
    if kind == TRANSFORM_JOB.name:
        return _transform_missing(name)
    return f'Could not find {_WORDS[kind]} "{cp.arn(kind, name)}".'


def _name(p: Params, member: str, operation: str) -> str:
    check_members(p, operation)
    value = p.get(member)
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{member}: required field is missing", field=member)
    return value


def _create(cp: ControlPlane, kind: str, name: str, create: Callable[[], tuple[str, bool]]) -> str:
    """Create, refusing a name in use whatever its spec (SageMaker has no idempotent create)."""
    arn = cp.arn(kind, name)
    if kind in _JOB_WORDS:
        exists = AwsError(
            "ResourceInUse",
            f"{_JOB_WORDS[kind].capitalize()} names must be unique within an AWS account and "
            f"region, and a {_JOB_WORDS[kind]} with this name already exists ({arn})",
        )
    else:
        exists = AwsError(
            "ValidationException", f'Cannot create already existing {_WORDS[kind]} "{arn}".'
        )
    if cp.store.find(kind, name) is not None:
        raise exists
    try:
        arn, created = create()
    except ConflictError as e:  # made meanwhile, with another spec
        raise exists from e
    if not created:  # made meanwhile, with the same spec
        raise exists
    return arn


# --- lists ----------------------------------------------------------------------------------
_LIST_MEMBERS = frozenset(ListQuery.model_fields)
# SageMaker's default order of each list (botocore's documentation of SortOrder).
_DEFAULT_ORDER = {"ListTrainingJobs": "Ascending", "ListHyperParameterTuningJobs": "Ascending"}
_DEFAULT_SORT = {"ListHyperParameterTuningJobs": "Name"}
# SageMaker's own page size when MaxResults is not given.
WIRE_PAGE_SIZE = 10


def _list_query(p: Params, operation: str) -> ListQuery:
    check_members(p, operation)
    unsupported = sorted(set(p) - _LIST_MEMBERS)
    if unsupported:
        raise ValidationError(
            f"{unsupported[0]}: this server does not filter {operation} by it; leave it out",
            field=unsupported[0],
        )
    doc: dict[str, Any] = {
        "SortOrder": _DEFAULT_ORDER.get(operation, "Descending"),
        "MaxResults": WIRE_PAGE_SIZE,
    }
    if operation in _DEFAULT_SORT:
        doc["SortBy"] = _DEFAULT_SORT[operation]
    doc.update(p)
    q = parse(ListQuery, doc, operation)
    if q.StatusEquals is not None and operation in {"ListModels", "ListEndpointConfigs"}:
        raise ValidationError(f"StatusEquals: {operation} has no status", field="StatusEquals")
    return q


def _page(key: str, items: list[Any], token: str | None, structure: str) -> dict[str, Any]:
    return outgoing({key: [dump(i) for i in items], "NextToken": token}, structure)


# --- training jobs --------------------------------------------------------------------------
def create_training_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    op = "CreateTrainingJob"
    req = with_priority(
        _retryable_exit_codes(parse(CreateTrainingJobRequest, take_defaults(p, op), op))
    )
    arn = _create(cp, TRAINING_JOB.name, req.TrainingJobName, lambda: cp.create_training_job(req))
    return {"TrainingJobArn": arn}


def _retryable_exit_codes(req: CreateTrainingJobRequest) -> CreateTrainingJobRequest:
    """``RetryStrategy.RetryableExitCodes`` from its tag (SageMaker has no such member)."""
    i, tag = next(
        ((i, t) for i, t in enumerate(req.Tags) if t.Key == RETRYABLE_EXIT_CODES_TAG), (0, None)
    )
    if tag is None:
        return req
    where = f"Tags[{i}].Value"
    if req.RetryStrategy is None:
        raise ValidationError(
            f"{where}: the {RETRYABLE_EXIT_CODES_TAG} tag needs RetryStrategy "
            "(MaximumRetryAttempts) on the job",
            field=where,
        )
    codes = [c.strip() for c in tag.Value.split(",") if c.strip()]
    for k, entry in enumerate(codes):
        try:
            parse_exit_codes(entry)
        except ValueError as e:
            raise ValidationError(
                f"{where}: entry {k} of the {RETRYABLE_EXIT_CODES_TAG} tag "
                f"(RetryStrategy.RetryableExitCodes[{k}]): {e}",
                field=where,
            ) from None
    strategy = req.RetryStrategy.model_copy(update={"RetryableExitCodes": codes})
    return req.model_copy(update={"RetryStrategy": strategy})


def describe_training_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "TrainingJobName", "DescribeTrainingJob")
    with _missing(TRAINING_JOB_MISSING):
        job = cp.describe_training_job(name)
    doc = dump(job)
    if not job.ModelArtifacts.S3ModelArtifacts:
        # Where the model will be (SageMaker names it from the start).
        fields = set(CreateTrainingJobRequest.model_fields)
        spec = CreateTrainingJobRequest.model_validate(job.model_dump(include=fields))
        uri = training_output_uri(spec, cp.settings.objects.default_bucket)
        doc["ModelArtifacts"] = {"S3ModelArtifacts": uri}
    for seconds in ("TrainingTimeInSeconds", "BillableTimeInSeconds"):
        if doc.get(seconds) == 0:
            doc[seconds] = 1  # a job under a second: SageMaker counts one (its model's minimum)
    tuning = next((t.Value for t in job.Tags if t.Key == TUNING_JOB_TAG), None)
    if tuning:  # a tuning job's trial: SageMaker links it by ARN
        doc["TuningJobArn"] = cp.arn(HYPER_PARAMETER_TUNING_JOB.name, tuning)
    return outgoing(doc, "DescribeTrainingJobResponse")


def list_training_jobs(cp: ControlPlane, p: Params) -> dict[str, Any]:
    items, token = cp.list_training_jobs(_list_query(p, "ListTrainingJobs"))
    return _page("TrainingJobSummaries", items, token, "ListTrainingJobsResponse")


def stop_training_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "TrainingJobName", "StopTrainingJob")
    with _missing(TRAINING_JOB_MISSING), _refused_as_validation():
        cp.stop_training_job(name)
    return {}


def delete_training_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "TrainingJobName", "DeleteTrainingJob")
    with _missing(TRAINING_JOB_MISSING):
        cp.delete_training_job(name)  # an unfinished job: ResourceInUse
    return {}


# --- transform jobs -------------------------------------------------------------------------
def create_transform_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(CreateTransformJobRequest, p, "CreateTransformJob")
    arn = _create(cp, TRANSFORM_JOB.name, req.TransformJobName, lambda: cp.transform.create(req))
    return {"TransformJobArn": arn}


def describe_transform_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "TransformJobName", "DescribeTransformJob")
    with _missing(_transform_missing(name)):
        job = cp.transform.describe(name)
    return outgoing(dump(job), "DescribeTransformJobResponse")


def list_transform_jobs(cp: ControlPlane, p: Params) -> dict[str, Any]:
    items, token = cp.transform.list_jobs(_list_query(p, "ListTransformJobs"))
    return _page("TransformJobSummaries", items, token, "ListTransformJobsResponse")


def stop_transform_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "TransformJobName", "StopTransformJob")
    with _missing(_transform_missing(name)), _refused_as_validation():
        cp.transform.stop(name)
    return {}


# --- models ---------------------------------------------------------------------------------
def create_model(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(CreateModelRequest, p, "CreateModel")
    return {"ModelArn": _create(cp, MODEL.name, req.ModelName, lambda: cp.create_model(req))}


def describe_model(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "ModelName", "DescribeModel")
    with _missing(_not_found(cp, MODEL.name, name)):
        return outgoing(dump(cp.describe_model(name)), "DescribeModelOutput")


def list_models(cp: ControlPlane, p: Params) -> dict[str, Any]:
    items, token = cp.list_models(_list_query(p, "ListModels"))
    return _page("Models", items, token, "ListModelsOutput")


def delete_model(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "ModelName", "DeleteModel")
    with _missing(_not_found(cp, MODEL.name, name)):
        cp.delete_model(name)
    return {}


# --- endpoint configs -----------------------------------------------------------------------
def create_endpoint_config(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(CreateEndpointConfigRequest, p, "CreateEndpointConfig")
    arn = _create(
        cp, ENDPOINT_CONFIG.name, req.EndpointConfigName, lambda: cp.create_endpoint_config(req)
    )
    return {"EndpointConfigArn": arn}


def describe_endpoint_config(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "EndpointConfigName", "DescribeEndpointConfig")
    with _missing(_not_found(cp, ENDPOINT_CONFIG.name, name)):
        config = cp.describe_endpoint_config(name)
    return outgoing(dump(config), "DescribeEndpointConfigOutput")


def list_endpoint_configs(cp: ControlPlane, p: Params) -> dict[str, Any]:
    items, token = cp.list_endpoint_configs(_list_query(p, "ListEndpointConfigs"))
    return _page("EndpointConfigs", items, token, "ListEndpointConfigsOutput")


def delete_endpoint_config(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "EndpointConfigName", "DeleteEndpointConfig")
    with _missing(_not_found(cp, ENDPOINT_CONFIG.name, name)):
        cp.delete_endpoint_config(name)
    return {}


# --- endpoints ------------------------------------------------------------------------------
def create_endpoint(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(CreateEndpointRequest, p, "CreateEndpoint")
    arn = _create(cp, ENDPOINT.name, req.EndpointName, lambda: cp.create_endpoint(req))
    return {"EndpointArn": arn}


def describe_endpoint(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "EndpointName", "DescribeEndpoint")
    with _missing(_not_found(cp, ENDPOINT.name, name)):
        ep = cp.describe_endpoint(name)
    doc = dump(ep)
    # SageMaker's EndpointConfigName is the config that serves; the one an update moves to is
    # the pending deployment's.
    doc["EndpointConfigName"] = ep.CurrentEndpointConfigName or ep.EndpointConfigName
    doc["LastDeploymentConfig"] = doc.pop("DeploymentConfig", None)
    if ep.Deployment is not None:
        doc["PendingDeploymentSummary"] = {
            "EndpointConfigName": ep.Deployment.TargetEndpointConfigName,
            "StartTime": ep.Deployment.StartTime,
        }
    return outgoing(doc, "DescribeEndpointOutput")


def list_endpoints(cp: ControlPlane, p: Params) -> dict[str, Any]:
    items, token = cp.list_endpoints(_list_query(p, "ListEndpoints"))
    return _page("Endpoints", items, token, "ListEndpointsOutput")


def delete_endpoint(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "EndpointName", "DeleteEndpoint")
    with _missing(_not_found(cp, ENDPOINT.name, name)):
        cp.delete_endpoint(name)
    return {}


def _in_service(cp: ControlPlane, name: str) -> None:
    """SageMaker changes an endpoint only while it is InService."""
    with _missing(_not_found(cp, ENDPOINT.name, name)):
        status = cp.describe_endpoint(name).EndpointStatus
    if status != EndpointStatus.IN_SERVICE:
        raise AwsError(
            "ValidationException",
            f'Cannot update in-progress endpoint "{cp.arn(ENDPOINT.name, name)}".'
            f" (it is {status.value})",
        )


def update_endpoint(cp: ControlPlane, p: Params) -> dict[str, Any]:
    op = "UpdateEndpoint"
    name = _name(p, "EndpointName", op)
    rest = {k: v for k, v in take_defaults(p, op).items() if k != "EndpointName"}
    req = parse(UpdateEndpointRequest, rest, op)
    _in_service(cp, name)
    with _missing(_not_found(cp, ENDPOINT.name, name)), _refused_as_validation():
        return {"EndpointArn": cp.update_endpoint(name, req)}


def update_endpoint_weights_and_capacities(cp: ControlPlane, p: Params) -> dict[str, Any]:
    op = "UpdateEndpointWeightsAndCapacities"
    name = _name(p, "EndpointName", op)
    rest = {k: v for k, v in p.items() if k != "EndpointName"}
    req = parse(UpdateEndpointWeightsAndCapacitiesRequest, rest, op)
    _in_service(cp, name)
    with _missing(_not_found(cp, ENDPOINT.name, name)), _refused_as_validation():
        return {"EndpointArn": cp.update_endpoint_weights_and_capacities(name, req)}


# --- tags -----------------------------------------------------------------------------------
ResourceArn = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class AddTagsRequest(Spec):
    ResourceArn: ResourceArn
    Tags: Annotated[TagList, Field(min_length=0)]


class ListTagsRequest(Spec):
    ResourceArn: ResourceArn
    NextToken: str | None = None
    MaxResults: Annotated[int, Field(ge=50)] | None = None


class DeleteTagsRequest(Spec):
    ResourceArn: ResourceArn
    TagKeys: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=128)]],
        Field(min_length=1, max_length=50),
    ]


@contextmanager
def _tagged(cp: ControlPlane, arn: str) -> Iterator[tuple[str, str]]:
    """The (kind, name) an ARN names, in SageMaker's words when there is none."""
    with _missing(f'Could not find resource "{arn}".'), _refused_as_validation():
        record = cp.tags.find_by_arn(arn)
        yield record.kind, record.name


def add_tags(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(AddTagsRequest, p, "AddTags")
    with _tagged(cp, req.ResourceArn) as (kind, name):
        added = cp.tags.add_tags(kind, name, req.Tags)
    return outgoing({"Tags": [dump(t) for t in added]}, "AddTagsOutput")


def list_tags(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(ListTagsRequest, p, "ListTags")
    if req.NextToken:
        raise ValidationError(
            "NextToken: a resource's tags (50 at most) come on one page; there is no next one",
            field="NextToken",
        )
    with _tagged(cp, req.ResourceArn) as (kind, name):
        tags: list[Tag] = cp.tags.tags_of(kind, name)
    return {"Tags": [dump(t) for t in tags]}


def delete_tags(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(DeleteTagsRequest, p, "DeleteTags")
    with _tagged(cp, req.ResourceArn) as (kind, name):
        cp.tags.delete_tags(kind, name, req.TagKeys)
    return {}


# --- search ---------------------------------------------------------------------------------
def search(cp: ControlPlane, p: Params) -> dict[str, Any]:
    req = parse(SearchRequest, p, "Search")
    if req.MaxResults is None:
        req = req.model_copy(update={"MaxResults": WIRE_PAGE_SIZE})
    found = cp.search(req)
    results = [
        {kind: outgoing(_as_sagemaker(cp, kind, doc), _SEARCH_SHAPES.get(kind, kind))}
        for r in found["Results"]
        for kind, doc in r.items()
    ]
    return outgoing({"Results": results, "NextToken": found["NextToken"]}, "SearchResponse")


def _as_sagemaker(cp: ControlPlane, kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """A training job as DescribeTrainingJob shows it (the model's URI from the start, a job
    under a second counted as one)."""
    if kind != TRAINING_JOB.name:
        return doc
    doc = dict(doc)
    if not (doc.get("ModelArtifacts") or {}).get("S3ModelArtifacts"):
        fields = set(CreateTrainingJobRequest.model_fields)
        spec = CreateTrainingJobRequest.model_validate({k: doc[k] for k in fields if k in doc})
        uri = training_output_uri(spec, cp.settings.objects.default_bucket)
        doc["ModelArtifacts"] = {"S3ModelArtifacts": uri}
    for seconds in ("TrainingTimeInSeconds", "BillableTimeInSeconds"):
        if doc.get(seconds) == 0:
            doc[seconds] = 1
    return doc


# SearchRecord's member -> its structure (where the names differ).
_SEARCH_SHAPES = {"HyperParameterTuningJob": "HyperParameterTuningJobSearchEntity"}


# --- hyperparameter tuning jobs -------------------------------------------------------------
def _tuning_missing(name: str) -> AwsError:
    return AwsError(
        "ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}"
    )


@contextmanager
def _tuning_named(name: str) -> Iterator[None]:
    """A missing tuning job, in SageMaker's words (ResourceNotFound, as botocore models it)."""
    try:
        yield
    except NotFoundError as e:
        raise _tuning_missing(name) from e


def create_hyper_parameter_tuning_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    op = "CreateHyperParameterTuningJob"
    check_members(p, op)
    req = parse(CreateHyperParameterTuningJobRequest, p, op)
    name = req.HyperParameterTuningJobName
    exists = AwsError(
        "ResourceInUse",
        "Hyperparameter tuning job names must be unique within an AWS account and region, and "
        f"a tuning job with this name already exists ({cp.arn(KIND_TUNING, name)})",
    )
    if cp.store.find(KIND_TUNING, name) is not None:
        raise exists
    try:
        arn, created = cp.tuning.create(req)
    except ConflictError as e:  # made meanwhile
        raise exists from e
    if not created:
        raise exists
    return {"HyperParameterTuningJobArn": arn}


def describe_hyper_parameter_tuning_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "HyperParameterTuningJobName", "DescribeHyperParameterTuningJob")
    with _tuning_named(name):
        job = cp.tuning.describe(name)
    return outgoing(dump(job), "DescribeHyperParameterTuningJobResponse")


def list_hyper_parameter_tuning_jobs(cp: ControlPlane, p: Params) -> dict[str, Any]:
    items, token = cp.tuning.list_jobs(_list_query(p, "ListHyperParameterTuningJobs"))
    return _page(
        "HyperParameterTuningJobSummaries", items, token, "ListHyperParameterTuningJobsResponse"
    )


def list_training_jobs_for_hyper_parameter_tuning_job(
    cp: ControlPlane, p: Params
) -> dict[str, Any]:
    op = "ListTrainingJobsForHyperParameterTuningJob"
    name = _name(p, "HyperParameterTuningJobName", op)
    doc: dict[str, Any] = {"MaxResults": WIRE_PAGE_SIZE}
    doc.update({k: v for k, v in p.items() if k != "HyperParameterTuningJobName"})
    q = parse(TrialQuery, doc, op)
    with _tuning_named(name):
        rows, token = cp.tuning.trials(name, q)
    return _page(
        "TrainingJobSummaries", rows, token, "ListTrainingJobsForHyperParameterTuningJobResponse"
    )


def stop_hyper_parameter_tuning_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "HyperParameterTuningJobName", "StopHyperParameterTuningJob")
    with _tuning_named(name), _refused_as_validation():
        cp.tuning.stop(name)
    return {}


def delete_hyper_parameter_tuning_job(cp: ControlPlane, p: Params) -> dict[str, Any]:
    name = _name(p, "HyperParameterTuningJobName", "DeleteHyperParameterTuningJob")
    with _tuning_named(name), _refused_as_validation():
        cp.tuning.delete(name)
    return {}


KIND_TUNING = HYPER_PARAMETER_TUNING_JOB.name


TABLE: tuple[Row, ...] = (
    Row("CreateTrainingJob", create_training_job,
        "script mode, built-in algorithms (AlgorithmName, or SageMaker's image of one), your "
        "own image on Docker and Kubernetes; fields a backend cannot honour are refused by name"),
    Row("DescribeTrainingJob", describe_training_job,
        "statuses, secondary status transitions, final metrics, model artifact"),
    Row("ListTrainingJobs", list_training_jobs,
        "NameContains, StatusEquals, Creation/LastModifiedTime filters, SortBy, SortOrder, paging"),
    Row("StopTrainingJob", stop_training_job,
        "SIGTERM, then SIGKILL after the grace"),
    Row("DeleteTrainingJob", delete_training_job,
        "a job that has ended; its record goes once the backend has cleaned up"),
    Row("CreateModel", create_model,
        "PrimaryContainer or Containers (inference pipelines); SageMaker's scikit-learn and "
        "built-in algorithm images are served by the serving image"),
    Row("DescribeModel", describe_model),
    Row("ListModels", list_models,
        "NameContains, CreationTime filters, SortBy, SortOrder, paging"),
    Row("DeleteModel", delete_model),
    Row("CreateEndpointConfig", create_endpoint_config,
        "production and shadow variants, ManagedInstanceScaling bounds"),
    Row("DescribeEndpointConfig", describe_endpoint_config),
    Row("ListEndpointConfigs", list_endpoint_configs,
        "NameContains, CreationTime filters, SortBy, SortOrder, paging"),
    Row("DeleteEndpointConfig", delete_endpoint_config),
    Row("CreateEndpoint", create_endpoint,
        "Creating, then InService once every replica answers /ping"),
    Row("DescribeEndpoint", describe_endpoint,
        "variants' current and desired weights and counts; a blue/green update in progress as "
        "PendingDeploymentSummary"),
    Row("ListEndpoints", list_endpoints,
        "NameContains, StatusEquals, Creation/LastModifiedTime filters, SortBy, SortOrder, paging"),
    Row("DeleteEndpoint", delete_endpoint,
        "Deleting, then gone once its replicas are"),
    Row("UpdateEndpoint", update_endpoint,
        "blue/green: all at once, canary or linear, with automatic rollback"),
    Row("UpdateEndpointWeightsAndCapacities",
        update_endpoint_weights_and_capacities,
        "DesiredWeight and DesiredInstanceCount in place (Updating, then InService); not "
        "ServerlessUpdateConfig"),
    Row("CreateTransformJob", create_transform_job,
        "S3Prefix or ManifestFile input, every SplitType (None, Line, RecordIO, TFRecord), "
        "Gzip, MultiRecord and SingleRecord, DataProcessing (SageMaker's JSONPath subset, "
        "JoinSource), InstanceCount instances that share even one large file; the Model's "
        "containers (an inference pipeline too) serve the records"),
    Row("DescribeTransformJob", describe_transform_job,
        "status, FailureReason, start and end times; progress per file and instance is in "
        "the REST API and on the custom resource"),
    Row("ListTransformJobs", list_transform_jobs,
        "NameContains, StatusEquals, Creation/LastModifiedTime filters, SortBy, SortOrder, paging"),
    Row("StopTransformJob", stop_transform_job,
        "Stopping, then Stopped; the files already written stay"),
    Row("AddTags", add_tags,
        "training jobs, transform jobs, models, endpoint configs and endpoints; up to 50 tags "
        "each"),
    Row("ListTags", list_tags, "one page (a resource has 50 tags at most)"),
    Row("DeleteTags", delete_tags),
    Row("Search", search,
        "Resource TrainingJob (and HyperParameterTuningJob): Filters, NestedFilters (Tags, "
        "FinalMetricDataList), SubExpressions, And/Or, every Operator; SortBy any property, "
        "paging; not CrossAccountFilterOption, VisibilityConditions, TotalHits"),
    Row("CreateHyperParameterTuningJob", create_hyper_parameter_tuning_job,
        "Bayesian (Optuna's TPE), Random, Grid, Hyperband; early stopping Auto (the median "
        "rule); completion criteria; warm start; trials are training jobs on any backend. "
        "HyperParameterTuningResourceConfig (the SDK's) with one instance type, not "
        "InstanceConfigs; not Autotune, AutoParameters, VpcConfig"),
    Row("DescribeHyperParameterTuningJob",
        describe_hyper_parameter_tuning_job,
        "status and objective counters, BestTrainingJob, OverallBestTrainingJob (warm start)"),
    Row("ListHyperParameterTuningJobs", list_hyper_parameter_tuning_jobs,
        "NameContains, StatusEquals, Creation/LastModifiedTime filters, SortBy, SortOrder, paging"),
    Row("ListTrainingJobsForHyperParameterTuningJob",
        list_training_jobs_for_hyper_parameter_tuning_job,
        "StatusEquals, SortBy (FinalObjectiveMetricValue leaves out trials without one), "
        "SortOrder, paging"),
    Row("StopHyperParameterTuningJob", stop_hyper_parameter_tuning_job,
        "no new trials; every running trial is stopped"),
    Row("DeleteHyperParameterTuningJob", delete_hyper_parameter_tuning_job,
        "a tuning job that has ended; its trials stay"),
)  # fmt: skip


def _call(
    handler: Handler, create: bool, cp: ControlPlane, params: Params, principal: Principal
) -> dict[str, Any]:
    if create and OWNER_TAG in principal.policies.tag_keys:
        params = {**params, "Tags": stamp_owner(params.get("Tags"), principal.name)}
    return handler(cp, params)


def stamp_owner(tags: Any, owner: str) -> Any:
    """A create's tags with ``orchestrator:owner`` set to the caller (whatever was sent: the
    DataScientist policy's "own resources" rests on it)."""
    if tags is not None and not isinstance(tags, list):
        return tags  # the request's own validation names the problem
    kept = [t for t in tags or [] if not (isinstance(t, dict) and t.get("Key") == OWNER_TAG)]
    return [*kept, {"Key": OWNER_TAG, "Value": owner}]


_KIND_WORDS = {
    "HyperParameterTuningJob": HYPER_PARAMETER_TUNING_JOB.name,
    "TrainingJob": TRAINING_JOB.name,
    "TransformJob": TRANSFORM_JOB.name,
    "EndpointConfig": ENDPOINT_CONFIG.name,
    "Endpoint": ENDPOINT.name,
    "Model": MODEL.name,
}


def _target(cp: ControlPlane, operation: str) -> Target:
    """The resource ``operation`` acts on: the one its ``<Kind>Name`` member names (ARN and
    stored tags), the one of ``ResourceArn`` for the tag operations, none for lists."""
    if operation in ("AddTags", "DeleteTags", "ListTags"):

        def by_arn(p: Params) -> tuple[str, TagSource]:
            arn = p.get("ResourceArn")
            if not isinstance(arn, str):
                return "*", None

            def read() -> dict[str, str]:
                try:
                    record = cp.tags.find_by_arn(arn)
                except (NotFoundError, ValidationError):
                    return {}
                return {t.Key: t.Value for t in cp.tags.tags_of(record.kind, record.name)}

            return arn, read

        return by_arn
    if operation.startswith("List") and operation != "ListTrainingJobsForHyperParameterTuningJob":
        return no_resource
    word = next((w for w in _KIND_WORDS if w in operation), None)
    if word is None:
        return no_resource
    kind = _KIND_WORDS[word]
    create = operation.startswith("Create")

    def named(p: Params) -> tuple[str, TagSource]:
        name = p.get(f"{word}Name")
        name = name if isinstance(name, str) else ""
        if create:
            return cp.arn(kind, name), None

        def read() -> dict[str, str]:
            try:
                return {t.Key: t.Value for t in cp.tags.tags_of(kind, name)}
            except NotFoundError:
                return {}

        return cp.arn(kind, name), read

    return named


def operations(cp: ControlPlane) -> dict[str, Operation]:
    return {
        row.name: Operation(
            row.name,
            row.action,
            partial(_call, row.handler, row.name.startswith("Create"), cp),
            row.note,
            _target(cp, row.name),
        )
        for row in TABLE
    }


class SageMakerService(JsonService):
    signing_name: ClassVar[str] = "sagemaker"
    target_prefix: ClassVar[str] = "SageMaker."
    json_version: ClassVar[str] = "1.1"

    def __init__(self, cp: ControlPlane) -> None:
        super().__init__(operations(cp))
