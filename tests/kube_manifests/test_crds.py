"""The generated CRDs: their shape, that they are structural, and that the files installed by
``kubectl apply -f manifests/crds`` and by the Helm chart are exactly what the models generate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.kube.__main__ import main, rendered_crds
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.kube.crds import generate_crds
from orchestrator.resources import KINDS
from tests.kube_manifests.conftest import CHART, MANIFESTS

REGENERATE = "python -m orchestrator.kube write-crds manifests/crds helm/orchestrator/crds"

# Short names of built-in resources and of widely installed add-ons we must not shadow.
TAKEN_SHORT_NAMES = {
    "cm",
    "cs",
    "csr",
    "crd",
    "crds",
    "cj",
    "deploy",
    "ds",
    "ep",
    "ev",
    "hpa",
    "ing",
    "limits",
    "netpol",
    "no",
    "ns",
    "pc",
    "pdb",
    "po",
    "psp",
    "pv",
    "pvc",
    "quota",
    "rc",
    "rs",
    "sa",
    "sc",
    "sts",
    "svc",
    "isvc",
    "tm",
    "tj",
    "pj",
    "mpijob",
    "rayjob",
    "smon",
    "pmon",
    "prom",
    "am",
}

# Keywords a Kubernetes structural schema may use (apiextensions.k8s.io/v1 JSONSchemaProps
# minus those the API server forbids: $ref, definitions, patternProperties, additionalItems,
# uniqueItems, dependencies, const).
STRUCTURAL_KEYWORDS = {
    "type",
    "format",
    "description",
    "nullable",
    "enum",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "multipleOf",
    "pattern",
    "required",
    "items",
    "properties",
    "additionalProperties",
    "x-kubernetes-preserve-unknown-fields",
}


def structural_violations(node: dict[str, Any], path: str = "") -> list[str]:
    """The API server's structural-schema rules that a generated schema could break."""
    out = [f"{path}: {k} is not allowed" for k in node if k not in STRUCTURAL_KEYWORDS]
    if "type" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
        out.append(f"{path}: no type")
    if "properties" in node and "additionalProperties" in node:
        out.append(f"{path}: properties and additionalProperties are mutually exclusive")
    if node.get("additionalProperties") is False:
        out.append(f"{path}: additionalProperties: false (pruning already drops unknowns)")
    if node.get("type") == "array" and not isinstance(node.get("items"), dict):
        out.append(f"{path}: an array needs one items schema")
    for name in node.get("required", []):
        if name not in node.get("properties", {}):
            out.append(f"{path}: required {name} is not a property")
    for name, sub in node.get("properties", {}).items():
        if name[:1].isupper():
            out.append(f"{path}.{name}: not camelCase")
        out += structural_violations(sub, f"{path}.{name}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            out += structural_violations(node[key], f"{path}[{key}]")
    return out


def schema_at(schema: dict[str, Any], json_path: str) -> dict[str, Any] | None:
    """The schema a printer column's JSONPath (``.a.b[0].c``) points at, or None."""
    node: dict[str, Any] | None = schema
    for part in json_path.strip(".").split("."):
        name, _, index = part.partition("[")
        node = (node or {}).get("properties", {}).get(name)
        if node is not None and index:
            node = node.get("items")
    return node


@pytest.fixture(scope="module")
def crds() -> dict[str, dict[str, Any]]:
    return {crd["spec"]["names"]["kind"]: crd for crd in generate_crds()}


def test_one_crd_per_kind_in_our_group(crds: dict[str, dict[str, Any]]) -> None:
    assert set(crds) == set(KINDS)
    for kind, crd in crds.items():
        spec = crd["spec"]
        plural = spec["names"]["plural"]
        assert plural == kind.lower() + "s"
        assert crd["metadata"]["name"] == f"{plural}.{API_GROUP}"
        assert spec["group"] == API_GROUP
        assert spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["orchestrator", "ml"]
        [version] = spec["versions"]
        assert (version["name"], version["served"], version["storage"]) == (
            API_VERSION,
            True,
            True,
        )
        assert version["subresources"] == {"status": {}}


def test_short_names_are_unique_and_clash_with_nothing_known(
    crds: dict[str, dict[str, Any]],
) -> None:
    names = [n for crd in crds.values() for n in crd["spec"]["names"]["shortNames"]]
    assert len(names) == len(set(names))
    assert not set(names) & TAKEN_SHORT_NAMES
    assert {k: c["spec"]["names"]["shortNames"] for k, c in crds.items()} == {
        "TrainingJob": ["otj"],
        "Model": ["omodel"],
        "EndpointConfig": ["oepc"],
        "Endpoint": ["oep"],
        "HyperParameterTuningJob": ["ohpt"],
        "TransformJob": ["otf"],
        "DataSource": ["ods"],
    }


def test_schemas_are_structural(crds: dict[str, dict[str, Any]]) -> None:
    for kind, crd in crds.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        assert structural_violations(schema, kind) == []
        assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec", "status"}
        assert schema["required"] == ["spec"]


def test_spec_is_the_create_request_without_its_name(crds: dict[str, dict[str, Any]]) -> None:
    for kind, crd in crds.items():
        spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
        fields = set(KINDS[kind].spec.model_fields) - {KINDS[kind].name_field}
        assert set(spec["properties"]) == {f[:1].lower() + f[1:] for f in fields}


def test_every_status_has_conditions_and_observed_generation(
    crds: dict[str, dict[str, Any]],
) -> None:
    for kind, crd in crds.items():
        schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        status = schema["properties"]["status"]["properties"]
        condition = status["conditions"]["items"]
        assert condition["required"] == ["type", "status", "lastTransitionTime"], kind
        assert condition["properties"]["status"]["enum"] == ["True", "False", "Unknown"], kind
        assert status["observedGeneration"]["type"] == "integer", kind


def test_free_form_maps_keep_string_values_and_nothing_else_is_free_form(
    crds: dict[str, dict[str, Any]],
) -> None:
    spec = crds["TrainingJob"]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    spec = spec["properties"]["spec"]["properties"]
    assert spec["hyperParameters"]["type"] == "object"
    assert spec["hyperParameters"]["additionalProperties"]["type"] == "string"
    assert spec["environment"]["additionalProperties"]["type"] == "string"
    for kind, crd in crds.items():
        text = repr(crd)
        assert "x-kubernetes-preserve-unknown-fields" not in text, kind
        assert "$ref" not in text and "anyOf" not in text, kind


def test_printer_columns_point_at_declared_fields(crds: dict[str, dict[str, Any]]) -> None:
    kinds_of = {"string": "string", "number": "number", "integer": "integer"}
    for kind, crd in crds.items():
        version = crd["spec"]["versions"][0]
        columns = version["additionalPrinterColumns"]
        assert columns[0]["name"] in {"Status", "Image", "Model"}
        assert any(c["name"] == "Age" and c["type"] == "date" for c in columns), kind
        schema = version["schema"]["openAPIV3Schema"]
        for column in columns:
            if column["jsonPath"] == ".metadata.creationTimestamp":
                continue
            target = schema_at(schema, column["jsonPath"])
            assert target is not None, f"{kind}: {column['jsonPath']} is not in the schema"
            assert kinds_of[column["type"]] == target["type"], (kind, column)
    names = [
        c["name"] for c in crds["TrainingJob"]["spec"]["versions"][0]["additionalPrinterColumns"]
    ]
    assert names[:5] == ["Status", "Secondary", "Metric", "Value", "Age"]
    endpoint = crds["Endpoint"]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["jsonPath"] for c in endpoint][:2] == [
        ".status.endpointStatus",
        ".spec.endpointConfigName",
    ]


@pytest.mark.parametrize(
    "directory", [MANIFESTS / "crds", CHART / "crds"], ids=["manifests", "helm"]
)
def test_crd_files_do_not_drift_from_the_models(directory: Path) -> None:
    expected = rendered_crds()
    actual = {p.name: p.read_text() for p in sorted(directory.glob("*.yaml"))}
    stale = sorted(set(actual) - set(expected))
    missing = sorted(set(expected) - set(actual))
    changed = sorted(n for n in set(actual) & set(expected) if actual[n] != expected[n])
    assert not (stale or missing or changed), (
        f"{directory.relative_to(CHART.parents[1])} differs from the resource models "
        f"(changed: {changed}, missing: {missing}, stale: {stale}); run `{REGENERATE}`"
    )


def test_write_crds_is_stable_and_removes_stale_files(tmp_path: Path) -> None:
    stale = tmp_path / "orchestrator.dev_gone.yaml"
    stale.write_text(next(iter(rendered_crds().values())))
    kept = tmp_path / "notes_mine.yaml"
    kept.write_text("hand-written: true\n")
    assert main(["write-crds", str(tmp_path)]) == 0
    first = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert main(["write-crds", str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == first
    assert not stale.exists() and kept.exists()
    assert sorted(first) == sorted([*rendered_crds(), "notes_mine.yaml"])


def test_write_crds_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["write-crd", "x"]) == 2
    assert "usage: python -m orchestrator.kube write-crds" in capsys.readouterr().err
