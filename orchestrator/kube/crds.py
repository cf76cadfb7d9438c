"""CustomResourceDefinitions generated from the resource models. Pure.

Each kind's spec is its ``Create*Request`` model without the name field (the name is
``metadata.name``); its status is the kind's ``*State`` model. The models' JSON schemas are
rewritten into the *structural* OpenAPI v3 subset the Kubernetes API server accepts:

- every ``$ref`` inlined (no ``$defs``), field names in camelCase (``convert.camel``);
- ``anyOf: [X, {type: null}]`` becomes ``X`` with ``nullable: true``; ``const`` becomes a
  one-value ``enum``;
- free-form maps (``convert.FREE_FORM_MAPS``) become ``additionalProperties: {type: string}``;
  ``patternProperties`` and ``propertyNames`` (not supported by the API server) are dropped,
  so the key rules of those maps are checked by the models, not by the schema;
- defaults are dropped: the models apply them (one source of defaults), so what a user
  applied is what ``kubectl get -o yaml`` shows;
- ``additionalProperties: false`` is dropped: a structural schema prunes unknown fields, and
  ``kubectl``'s strict field validation reports them;
- enums, patterns, lengths and bounds are kept; instance types get the catalog as an enum.

Rules that span fields (exactly one of ``primaryContainer`` or ``containers``, something to
run for a training job, unique channel names) live in the models' validators; the operator
reports a resource that breaks them in its status.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, TypeAdapter

from orchestrator.kube.convert import API_GROUP, API_VERSION, FREE_FORM_MAPS, camel
from orchestrator.resources.common import Condition
from orchestrator.resources.instances import instance_type_names
from orchestrator.resources.kinds import KINDS, Kind
from orchestrator.resources.models import ModelState

Schema = dict[str, Any]

CATEGORIES = ["orchestrator", "ml"]

# The status schema of kinds without a lifecycle: conditions only (a ``Valid`` condition).
_NO_LIFECYCLE: type[BaseModel] = ModelState

_AGE = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}

PRINTER_COLUMNS: dict[str, list[dict[str, Any]]] = {
    "TrainingJob": [
        {"name": "Status", "type": "string", "jsonPath": ".status.trainingJobStatus"},
        {"name": "Secondary", "type": "string", "jsonPath": ".status.secondaryStatus"},
        {
            "name": "Metric",
            "type": "string",
            "jsonPath": ".status.finalMetricDataList[0].metricName",
        },
        {"name": "Value", "type": "number", "jsonPath": ".status.finalMetricDataList[0].value"},
        _AGE,
        {
            "name": "Instance",
            "type": "string",
            "jsonPath": ".spec.resourceConfig.instanceType",
            "priority": 1,
        },
        {"name": "Reason", "type": "string", "jsonPath": ".status.failureReason", "priority": 1},
    ],
    "Model": [
        {"name": "Image", "type": "string", "jsonPath": ".spec.primaryContainer.image"},
        {"name": "Data", "type": "string", "jsonPath": ".spec.primaryContainer.modelDataUrl"},
        _AGE,
    ],
    "EndpointConfig": [
        {"name": "Model", "type": "string", "jsonPath": ".spec.productionVariants[0].modelName"},
        {
            "name": "Instance",
            "type": "string",
            "jsonPath": ".spec.productionVariants[0].instanceType",
        },
        {
            "name": "Count",
            "type": "integer",
            "jsonPath": ".spec.productionVariants[0].initialInstanceCount",
        },
        _AGE,
    ],
    "Endpoint": [
        {"name": "Status", "type": "string", "jsonPath": ".status.endpointStatus"},
        {"name": "Config", "type": "string", "jsonPath": ".spec.endpointConfigName"},
        {
            "name": "Instances",
            "type": "integer",
            "jsonPath": ".status.productionVariants[0].currentInstanceCount",
        },
        _AGE,
        {"name": "Reason", "type": "string", "jsonPath": ".status.failureReason", "priority": 1},
    ],
    "HyperParameterTuningJob": [
        {
            "name": "Status",
            "type": "string",
            "jsonPath": ".status.hyperParameterTuningJobStatus",
        },
        {
            "name": "Strategy",
            "type": "string",
            "jsonPath": ".spec.hyperParameterTuningJobConfig.strategy",
        },
        {
            "name": "Completed",
            "type": "integer",
            "jsonPath": ".status.trainingJobStatusCounters.completed",
        },
        {
            "name": "Running",
            "type": "integer",
            "jsonPath": ".status.trainingJobStatusCounters.inProgress",
        },
        {
            "name": "Best",
            "type": "string",
            "jsonPath": ".status.bestTrainingJob.trainingJobName",
        },
        {
            "name": "Objective",
            "type": "number",
            "jsonPath": ".status.bestTrainingJob.finalHyperParameterTuningJobObjectiveMetric.value",
        },
        _AGE,
    ],
    "DataSource": [
        {"name": "Status", "type": "string", "jsonPath": ".status.status"},
        {"name": "Version", "type": "integer", "jsonPath": ".status.version"},
        {"name": "Completed", "type": "integer", "jsonPath": ".status.completedVersion"},
        {"name": "Rows", "type": "integer", "jsonPath": ".status.versions[-1:].rowCount"},
        _AGE,
        {"name": "Message", "type": "string", "jsonPath": ".status.message", "priority": 1},
    ],
    "TransformJob": [
        {"name": "Status", "type": "string", "jsonPath": ".status.transformJobStatus"},
        {"name": "Model", "type": "string", "jsonPath": ".spec.modelName"},
        {"name": "Files", "type": "integer", "jsonPath": ".status.progress.filesTotal"},
        {"name": "Done", "type": "integer", "jsonPath": ".status.progress.filesCompleted"},
        {"name": "Records", "type": "integer", "jsonPath": ".status.progress.recordsProcessed"},
        _AGE,
        {
            "name": "Instances",
            "type": "integer",
            "jsonPath": ".spec.transformResources.instanceCount",
            "priority": 1,
        },
        {
            "name": "Instance",
            "type": "string",
            "jsonPath": ".spec.transformResources.instanceType",
            "priority": 1,
        },
        {"name": "Reason", "type": "string", "jsonPath": ".status.failureReason", "priority": 1},
    ],
}

# Keywords a structural schema may carry; everything else from JSON Schema is dropped.
_KEPT = frozenset(
    {
        "description",
        "enum",
        "format",
        "maximum",
        "minimum",
        "maxLength",
        "minLength",
        "maxItems",
        "minItems",
        "maxProperties",
        "minProperties",
        "multipleOf",
        "pattern",
    }
)
# The formats the API server knows; others are left to the models.
_FORMATS = frozenset({"date-time", "date", "byte", "int32", "int64", "float", "double", "uri"})


def plural(kind: Kind) -> str:
    return kind.crd_plural


def crd_name(kind: Kind) -> str:
    return f"{plural(kind)}.{API_GROUP}"


def generate_crds() -> list[dict[str, Any]]:
    """One CustomResourceDefinition per kind, in ``KINDS`` order."""
    return [generate_crd(kind) for kind in KINDS.values()]


def generate_crd(kind: Kind) -> dict[str, Any]:
    # A deep copy: no part is shared with another CRD or with module constants.
    return copy.deepcopy(_crd(kind))


def _crd(kind: Kind) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": crd_name(kind),
            "labels": {"app.kubernetes.io/part-of": "orchestrator"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind.name,
                "listKind": f"{kind.name}List",
                "plural": plural(kind),
                "singular": kind.name.lower(),
                # Short names (``Kind.short_names``) clash with no built-in resource (``ep``
                # is core Endpoints) nor a well-known add-on; each starts with "o".
                "shortNames": list(kind.short_names),
                "categories": CATEGORIES,
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS[kind.name],
                    "schema": {"openAPIV3Schema": resource_schema(kind)},
                }
            ],
        },
    }


def resource_schema(kind: Kind) -> Schema:
    """The whole custom resource: apiVersion, kind, metadata, spec and status."""
    return {
        "type": "object",
        "description": f"{kind.name}: the fields of SageMaker's Create{kind.name} in camelCase.",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec_schema(kind),
            "status": status_schema(kind),
        },
        "required": ["spec"],
    }


def spec_schema(kind: Kind) -> Schema:
    raw = kind.spec.model_json_schema(mode="validation")
    raw["properties"].pop(kind.name_field)
    raw["required"] = [r for r in raw.get("required", []) if r != kind.name_field]
    raw["description"] = (
        f"What the user asks for (SageMaker's Create{kind.name} request; "
        f"{kind.name_field} is metadata.name)."
    )
    return structural(raw)


def status_schema(kind: Kind) -> Schema:
    model = kind.status or _NO_LIFECYCLE
    raw: Schema = model.model_json_schema(mode="validation")
    out = structural(raw)
    out["description"] = "What the operator observed; written only through the status subresource."
    props = out.setdefault("properties", {})
    # Every kind reports conditions (a Model or EndpointConfig only "Valid"); the server prunes
    # status fields its schema does not declare, so they must be here even without a state model.
    if "conditions" not in props:
        props["conditions"] = structural(
            TypeAdapter(list[Condition]).json_schema(mode="validation")
        )
    props["observedGeneration"] = {
        "type": "integer",
        "description": "The metadata.generation of the spec this status describes.",
    }
    return out


def structural(schema: Schema) -> Schema:
    """A pydantic JSON schema (with ``$defs``) as a structural OpenAPI v3 schema."""
    defs: dict[str, Schema] = schema.get("$defs", {})
    return _convert(schema, defs, field=None)


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """``node`` with its ``$ref`` (or a one-element ``allOf`` of one) merged in."""
    node = dict(node)
    all_of = node.pop("allOf", None)
    if all_of is not None:
        if len(all_of) != 1:
            raise ValueError(f"allOf with {len(all_of)} parts has no structural form")
        node = {**all_of[0], **node}
    ref = node.pop("$ref", None)
    if ref is not None:
        target = defs[ref.rsplit("/", 1)[-1]]
        node = {**_resolve(target, defs), **node}
    return node


def _convert(node: Schema, defs: dict[str, Schema], field: str | None) -> Schema:
    node = _resolve(node, defs)
    nullable = False
    any_of = node.pop("anyOf", None)
    if any_of is not None:
        branches = [b for b in any_of if b.get("type") != "null"]
        nullable = len(branches) < len(any_of)
        if len(branches) != 1:
            raise ValueError(f"{field}: a union of {len(branches)} types has no structural form")
        node = {**_resolve(branches[0], defs), **node}

    out: Schema = {k: copy.deepcopy(v) for k, v in node.items() if k in _KEPT}
    if "format" in out and out["format"] not in _FORMATS:
        del out["format"]
    if "const" in node:
        out["enum"] = [node["const"]]
    for bound, key in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if bound in node:
            out[key] = node[bound]
            out[bound] = True

    type_ = node.get("type")
    if type_ is None:
        # Truly free-form (``Any``): the only place unknown fields are kept.
        out["x-kubernetes-preserve-unknown-fields"] = True
    elif isinstance(type_, str):
        out["type"] = type_
    else:
        raise ValueError(f"{field}: a value of several types ({type_}) has no structural form")
    if type_ == "string" and field == "InstanceType" and "enum" not in out:
        out["enum"] = instance_type_names()
    if nullable:
        out["nullable"] = True

    if type_ == "array":
        out["items"] = _convert(node.get("items", {}), defs, field=None)
    elif type_ == "object":
        props: dict[str, Schema] | None = node.get("properties")
        if props is None or field in FREE_FORM_MAPS:
            if props:
                raise ValueError(f"{field}: a free-form map with declared properties")
            values = _map_values(node)
            if values is not None:
                out["additionalProperties"] = _convert(values, defs, field=None)
            else:
                # Truly free-form: the only place unknown fields are kept.
                out["x-kubernetes-preserve-unknown-fields"] = True
        else:
            out["properties"] = {
                camel(name): _convert(sub, defs, field=name) for name, sub in props.items()
            }
            required = [camel(r) for r in node.get("required", [])]
            if required:
                out["required"] = required
    return out


def _map_values(node: Schema) -> Schema | None:
    """The schema of a map's values: ``additionalProperties``, or the one pattern's schema
    (the key pattern itself cannot be said in a structural schema)."""
    values = node.get("additionalProperties")
    if isinstance(values, dict) and (values.get("type") or values.get("$ref")):
        return values  # a ``$ref``: an enum's (AttributeTypes' values)
    patterns: dict[str, Schema] = node.get("patternProperties", {})
    if len(patterns) == 1:
        return next(iter(patterns.values()))
    return None
