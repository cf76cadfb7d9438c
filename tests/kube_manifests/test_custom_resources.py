"""Custom resources against their CRD schemas: the samples pass, bad input is rejected with
the path of the offending field, and what the operator writes to status fits the schema.

The schema is applied with ``jsonschema`` (see ``conftest.to_jsonschema``). One difference
from a live API server: it prunes undeclared fields instead of rejecting them, and ``kubectl``
reports them as unknown (strict field validation); ``pruned_paths`` lists those fields.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.kube.convert import to_camel, to_pascal
from orchestrator.resources import (
    KINDS,
    Condition,
    EndpointState,
    ProductionVariantSummary,
    TrainingJobState,
)
from orchestrator.resources.training import MetricData, SecondaryStatusTransition
from orchestrator.resources.transform import (
    TransformFileProgress,
    TransformInstanceState,
    TransformJobState,
    TransformProgress,
)
from tests.kube_manifests.conftest import (
    MANIFESTS,
    is_our_cr,
    load_docs,
    pruned_paths,
    schema_errors,
)

SAMPLES = sorted((MANIFESTS / "samples").glob("*.yaml"))
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def sample(name: str) -> dict[str, Any]:
    [doc] = load_docs(MANIFESTS / "samples" / name)
    return copy.deepcopy(doc)


def test_samples_cover_every_kind_and_the_documented_cases() -> None:
    docs = [d for p in SAMPLES for d in load_docs(p)]
    assert all(is_our_cr(d) for d in docs)
    assert {d["kind"] for d in docs} == set(KINDS)
    specs = {d["metadata"]["name"]: d["spec"] for d in docs}
    assert "sagemaker_program" in specs["iris-script"]["hyperParameters"]
    assert specs["resnet-gpu"]["resourceConfig"]["instanceType"] == "ml.p3.2xlarge"
    assert specs["housing-linear"]["algorithmSpecification"]["algorithmName"] == "linear-learner"
    assert specs["iris-batch"]["dataProcessing"]["joinSource"] == "Input"


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_passes_its_crd_schema(path: Path, crd_schemas: dict[str, Any]) -> None:
    for doc in load_docs(path):
        schema = crd_schemas[doc["kind"]]
        assert schema_errors(schema, doc) == []
        assert pruned_paths(schema, doc) == []


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_is_a_valid_request_for_the_models(path: Path) -> None:
    # The operator turns a resource into the API's request; the samples must survive that too.
    for doc in load_docs(path):
        kind = KINDS[doc["kind"]]
        kind.spec.model_validate(
            {**to_pascal(doc["spec"]), kind.name_field: doc["metadata"]["name"]}
        )


def test_the_sample_config_autoscales_through_the_models_field() -> None:
    """Scaling is a field of the resource model (ManagedInstanceScaling), as on every backend;
    the Endpoint itself carries no annotation for it."""
    from orchestrator.kube.convert import to_pascal
    from orchestrator.resources.endpoints import CreateEndpointConfigRequest

    doc = sample("endpoint-config.yaml")
    config = CreateEndpointConfigRequest.model_validate(
        {**to_pascal(doc["spec"]), "EndpointConfigName": doc["metadata"]["name"]}
    )
    scaling = config.ProductionVariants[0].scaling
    assert scaling is not None and scaling.MinInstanceCount == 0 and scaling.TargetTracking
    assert not sample("endpoint.yaml")["metadata"].get("annotations")


def _drop(doc: dict[str, Any], dotted: str) -> None:
    *parents, last = dotted.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    del node[last]


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


MISSING = [
    ("training-job.yaml", "spec", "$", "'spec' is a required property"),
    ("training-job.yaml", "spec.algorithmSpecification", "$.spec", "'algorithmSpecification'"),
    (
        "training-job.yaml",
        "spec.inputDataConfig.0.dataSource",
        "$.spec.inputDataConfig[0]",
        "'dataSource'",
    ),
    (
        "training-job.yaml",
        "spec.inputDataConfig.0.dataSource.s3DataSource.s3Uri",
        "$.spec.inputDataConfig[0].dataSource.s3DataSource",
        "'s3Uri'",
    ),
    (
        "training-job.yaml",
        "spec.outputDataConfig.s3OutputPath",
        "$.spec.outputDataConfig",
        "'s3OutputPath'",
    ),
    (
        "training-job.yaml",
        "spec.retryStrategy.maximumRetryAttempts",
        "$.spec.retryStrategy",
        "'maximumRetryAttempts'",
    ),
    (
        "endpoint-config.yaml",
        "spec.productionVariants.0.modelName",
        "$.spec.productionVariants[0]",
        "'modelName'",
    ),
    ("endpoint.yaml", "spec.endpointConfigName", "$.spec", "'endpointConfigName'"),
]


@pytest.mark.parametrize(("name", "field", "at", "message"), MISSING, ids=[m[1] for m in MISSING])
def test_missing_required_field_is_rejected(
    name: str, field: str, at: str, message: str, crd_schemas: dict[str, Any]
) -> None:
    doc = sample(name)
    _drop(doc, field)
    errors = schema_errors(crd_schemas[doc["kind"]], doc)
    assert len(errors) == 1, errors
    assert errors[0][0] == at and message in errors[0][1] and "required" in errors[0][1]


BAD_VALUES = [
    # wrong types
    ("training-job.yaml", "spec.resourceConfig.instanceCount", "two", "is not of type 'integer'"),
    ("training-job.yaml", "spec.hyperParameters.epochs", 20, "is not of type 'string'"),
    (
        "training-job.yaml",
        "spec.inputDataConfig",
        {"channelName": "train"},
        "is not of type 'array'",
    ),
    ("training-job.yaml", "spec.enableNetworkIsolation", "yes", "is not of type 'boolean'"),
    ("model.yaml", "spec.primaryContainer.environment.LOG_LEVEL", 3, "is not of type 'string'"),
    (
        "endpoint-config.yaml",
        "spec.productionVariants.0.initialVariantWeight",
        "9",
        "is not of type 'number'",
    ),
    # enums
    ("training-job.yaml", "spec.algorithmSpecification.trainingInputMode", "Pipe", "is not one of"),
    ("training-job.yaml", "spec.resourceConfig.instanceType", "ml.bogus.xlarge", "is not one of"),
    ("endpoint.yaml", "spec.authMode", "Open", "is not one of"),
    # patterns, lengths and bounds
    (
        "training-job.yaml",
        "spec.outputDataConfig.s3OutputPath",
        "https://bucket/out",
        "does not match",
    ),
    ("training-job.yaml", "spec.inputDataConfig.0.channelName", "train data", "does not match"),
    ("training-job.yaml", "spec.resourceConfig.instanceCount", 0, "is less than the minimum of 1"),
    (
        "training-job.yaml",
        "spec.stoppingCondition.maxRuntimeInSeconds",
        2419201,
        "is greater than the maximum",
    ),
    ("endpoint-config.yaml", "spec.productionVariants", [], "should be non-empty"),
    ("endpoint.yaml", "spec.endpointConfigName", "bad_name", "does not match"),
]


@pytest.mark.parametrize(
    ("name", "field", "value", "message"), BAD_VALUES, ids=[f"{b[1]}={b[2]!r}" for b in BAD_VALUES]
)
def test_bad_value_is_rejected_with_its_path(
    name: str, field: str, value: Any, message: str, crd_schemas: dict[str, Any]
) -> None:
    doc = sample(name)
    _set(doc, field, value)
    errors = schema_errors(crd_schemas[doc["kind"]], doc)
    assert len(errors) == 1, errors
    path, text = errors[0]
    expected = "$." + field.replace(".0", "[0]")
    assert path == expected and message in text, errors


def test_null_is_accepted_only_where_the_model_allows_none(crd_schemas: dict[str, Any]) -> None:
    doc = sample("training-job.yaml")
    doc["spec"]["outputDataConfig"]["kmsKeyId"] = None  # Optional in the model
    assert schema_errors(crd_schemas["TrainingJob"], doc) == []
    doc["spec"]["resourceConfig"]["instanceCount"] = None  # has a default, not Optional
    assert [p for p, _ in schema_errors(crd_schemas["TrainingJob"], doc)] == [
        "$.spec.resourceConfig.instanceCount"
    ]


def test_unknown_fields_are_not_in_the_schema(crd_schemas: dict[str, Any]) -> None:
    doc = sample("training-job.yaml")
    doc["spec"]["trainingImage"] = "misplaced:1"  # belongs in algorithmSpecification
    doc["spec"]["resourceConfig"]["gpus"] = 1
    doc["spec"]["inputDataConfig"][0]["dataSource"]["s3DataSource"]["s3uri"] = "s3://b/k"
    doc["status"] = {"trainingJobStatus": "Completed", "phase": "Done"}
    # The server prunes these (kubectl apply reports them as unknown fields); the free-form
    # maps keep any key.
    doc["spec"]["hyperParameters"]["anything-goes"] = "1"
    assert pruned_paths(crd_schemas["TrainingJob"], doc) == [
        "$.spec.inputDataConfig[0].dataSource.s3DataSource.s3uri",
        "$.spec.resourceConfig.gpus",
        "$.spec.trainingImage",
        "$.status.phase",
    ]


def test_what_the_operator_writes_to_status_fits_the_schema(crd_schemas: dict[str, Any]) -> None:
    condition = Condition(
        Type="Ready", Status="True", Reason="Done", Message="", LastTransitionTime=NOW
    )
    job = TrainingJobState(
        TrainingJobStatus="Completed",
        SecondaryStatus="Completed",
        SecondaryStatusTransitions=[
            SecondaryStatusTransition(Status="Training", StartTime=NOW, EndTime=NOW)
        ],
        TrainingStartTime=NOW,
        TrainingEndTime=NOW,
        TrainingTimeInSeconds=12,
        FinalMetricDataList=[
            MetricData(MetricName="validation:accuracy", Value=0.97, Timestamp=NOW)
        ],
        Conditions=[condition],
    )
    endpoint = EndpointState(
        EndpointStatus="InService",
        ProductionVariants=[
            ProductionVariantSummary(
                VariantName="main",
                CurrentWeight=9,
                DesiredWeight=9,
                CurrentInstanceCount=2,
                DesiredInstanceCount=2,
            )
        ],
        Conditions=[condition],
    )
    transform = TransformJobState(
        TransformJobStatus="InProgress",
        TransformStartTime=NOW,
        Progress=TransformProgress(
            FilesTotal=2,
            FilesCompleted=1,
            BytesTotal=300,
            BytesProcessed=200,
            RecordsProcessed=12,
            RecordsPerSecond=40.5,
            ModelLatencyMicroseconds=850.0,
            Files=[
                TransformFileProgress(
                    Key="b.csv", SizeBytes=100, BytesProcessed=0, Status="InProgress"
                ),
                TransformFileProgress(
                    Key="a.csv", SizeBytes=200, BytesProcessed=200, RecordsProcessed=12,
                    Status="Completed",
                ),
            ],
        ),
        Instances=[
            TransformInstanceState(Instance=0, Attempt=1, Status="Running", StartTime=NOW),
            TransformInstanceState(
                Instance=1, Attempt=2, Status="Starting", Message="attempt 1 was killed"
            ),
        ],
        Conditions=[condition],
        StoppingSince=NOW,
    )  # fmt: skip
    for kind, state, name in (
        ("TrainingJob", job, "training-job.yaml"),
        ("TrainingJob", TrainingJobState(), "training-job.yaml"),
        ("Endpoint", endpoint, "endpoint.yaml"),
        ("TransformJob", transform, "transform-job.yaml"),
        ("TransformJob", TransformJobState(), "transform-job.yaml"),
    ):
        doc = sample(name)
        doc["status"] = {**to_camel(state.model_dump(mode="json")), "observedGeneration": 3}
        assert schema_errors(crd_schemas[kind], doc) == []
        assert pruned_paths(crd_schemas[kind], doc) == []
    # Kinds without a lifecycle report only conditions (e.g. Valid=False with the reason).
    for name in ("model.yaml", "endpoint-config.yaml"):
        doc = sample(name)
        doc["status"] = {"conditions": [to_camel(condition.model_dump(mode="json"))]}
        assert schema_errors(crd_schemas[doc["kind"]], doc) == []
        assert pruned_paths(crd_schemas[doc["kind"]], doc) == []


def test_a_full_spec_dumped_by_the_models_fits_the_schema(crd_schemas: dict[str, Any]) -> None:
    # Every field set (defaults and Nones included), as the operator or a client would dump it.
    for path in SAMPLES:
        for doc in load_docs(path):
            kind = KINDS[doc["kind"]]
            request = kind.spec.model_validate(
                {**to_pascal(doc["spec"]), kind.name_field: doc["metadata"]["name"]}
            )
            dumped = to_camel(request.model_dump(mode="json", exclude={kind.name_field}))
            full = {**doc, "spec": dumped}
            assert schema_errors(crd_schemas[doc["kind"]], full) == []
            assert pruned_paths(crd_schemas[doc["kind"]], full) == []
