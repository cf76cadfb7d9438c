"""Custom-resource field names: the SageMaker fields in camelCase, as the AWS controller for
Kubernetes writes them (``TrainingJobName`` -> ``trainingJobName``). Pure.

Free-form maps (``HyperParameters``, ``Environment``, a tuning job's ``StaticHyperParameters`` and
its trials' ``TunedHyperParameters``) keep their keys as the user wrote them;
only field names are converted.
"""

from __future__ import annotations

from typing import Any

# Fields whose values are maps with user-chosen keys.
# Maps whose keys are the user's names (never camel-cased): hyperparameters, environment
# variables, a data source's attribute names.
FREE_FORM_MAPS = frozenset(
    {
        "HyperParameters",
        "Environment",
        "StaticHyperParameters",
        "TunedHyperParameters",
        "AttributeTypes",
    }
)

API_GROUP = "orchestrator.dev"
API_VERSION = "v1alpha1"


def camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def pascal(name: str) -> str:
    return name[:1].upper() + name[1:]


def to_camel(doc: Any) -> Any:
    """A PascalCase document (API shape) as a custom resource's spec or status."""
    if isinstance(doc, dict):
        return {
            camel(k): (dict(v) if k in FREE_FORM_MAPS and isinstance(v, dict) else to_camel(v))
            for k, v in doc.items()
        }
    if isinstance(doc, list):
        return [to_camel(v) for v in doc]
    return doc


def to_pascal(doc: Any) -> Any:
    """A custom resource's camelCase spec back into the API shape the models validate."""
    if isinstance(doc, dict):
        out: dict[str, Any] = {}
        for k, v in doc.items():
            key = pascal(k)
            out[key] = dict(v) if key in FREE_FORM_MAPS and isinstance(v, dict) else to_pascal(v)
        return out
    if isinstance(doc, list):
        return [to_pascal(v) for v in doc]
    return doc
