"""Fixtures for the CRD, manifest and Helm chart checks: paths, the kubectl and helm binaries,
rendered charts, and the CRD schemas in forms ``jsonschema`` can apply.

No cluster runs here. What an API server would do with a structural schema is emulated in
two parts: ``to_jsonschema`` (types, required fields, enums, patterns, bounds, ``nullable``)
and ``pruned_paths`` (the fields the server would prune, which ``kubectl``'s strict field
validation reports as unknown).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from orchestrator.kube.convert import API_GROUP
from orchestrator.kube.crds import generate_crds

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
CHART = ROOT / "helm" / "orchestrator"
GPU_VALUES = CHART / "values-gpu.yaml"
TOOLS_BIN = ROOT / ".tools" / "bin"

OUR_KINDS = {crd["spec"]["names"]["kind"] for crd in generate_crds()}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def manifest_files() -> list[Path]:
    return sorted(MANIFESTS.rglob("*.yaml"))


def is_our_cr(doc: dict[str, Any]) -> bool:
    return str(doc.get("apiVersion", "")).startswith(API_GROUP + "/")


def find_tool(name: str) -> str:
    """``.tools/bin/NAME`` or NAME on PATH; else skip (fail in CI) naming ``make kube-tools``."""
    local = TOOLS_BIN / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found in .tools/bin or on PATH: run `make kube-tools`"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def run_tool(
    *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=60, check=False, env=env, cwd=cwd
    )


@pytest.fixture(scope="session")
def helm() -> str:
    return find_tool("helm")


@pytest.fixture(scope="session")
def kubectl() -> str:
    return find_tool("kubectl")


def helm_template(helm: str, *args: str) -> list[dict[str, Any]]:
    proc = run_tool(helm, "template", "orch", str(CHART), "--namespace", "orchestrator", *args)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


@pytest.fixture(scope="session")
def rendered_default(helm: str) -> list[dict[str, Any]]:
    return helm_template(helm)


@pytest.fixture(scope="session")
def rendered_gpu(helm: str) -> list[dict[str, Any]]:
    # As on a cluster with the Prometheus Operator installed, so the ServiceMonitor renders.
    return helm_template(
        helm, "-f", str(GPU_VALUES), "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"
    )


# --- CRD schemas as an API server applies them ------------------------------------------


@pytest.fixture(scope="session")
def crd_schemas() -> dict[str, dict[str, Any]]:
    """Kind -> the openAPIV3Schema of its CRD, read from manifests/crds (what users install)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((MANIFESTS / "crds").glob("*.yaml")):
        for crd in load_docs(path):
            version = crd["spec"]["versions"][0]
            out[crd["spec"]["names"]["kind"]] = version["schema"]["openAPIV3Schema"]
    return out


def to_jsonschema(node: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI v3 (Kubernetes) schema as JSON Schema: ``nullable`` becomes a null type;
    ``x-kubernetes-*`` keys, which jsonschema would ignore anyway, are dropped."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key.startswith("x-kubernetes-") or key == "nullable":
            continue
        if key == "properties":
            out[key] = {k: to_jsonschema(v) for k, v in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = to_jsonschema(value)
        else:
            out[key] = value
    if node.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    return out


def schema_errors(schema: dict[str, Any], doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(JSON path, message) for every violation, as the API server would report them."""
    validator = jsonschema.Draft7Validator(
        to_jsonschema(schema), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )
    return sorted((e.json_path, e.message) for e in validator.iter_errors(doc))


def pruned_paths(schema: dict[str, Any], doc: Any, path: str = "$") -> list[str]:
    """The fields a structural schema does not declare: pruned by the API server, reported
    as unknown by ``kubectl apply`` (strict field validation, the default since 1.27)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out: list[str] = []
    if isinstance(doc, dict):
        if path == "$.metadata":
            return []  # ObjectMeta is checked by the server itself, not by the CRD.
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, value in doc.items():
            if props is not None and key in props:
                out += pruned_paths(props[key], value, f"{path}.{key}")
            elif isinstance(extra, dict):
                out += pruned_paths(extra, value, f"{path}.{key}")
            else:
                out.append(f"{path}.{key}")
    elif isinstance(doc, list) and isinstance(schema.get("items"), dict):
        for i, value in enumerate(doc):
            out += pruned_paths(schema["items"], value, f"{path}[{i}]")
    return out


# --- a discovery-only stand-in for kubectl's client-side dry run -------------------------

# Resources kubectl must be able to map for the manifests here: (group/version, plural, kind,
# namespaced). Our own kinds are added from the CRDs, as a server does once they are installed.
_BUILTIN_RESOURCES = [
    ("v1", "namespaces", "Namespace", False),
    ("v1", "serviceaccounts", "ServiceAccount", True),
    ("v1", "services", "Service", True),
    ("v1", "secrets", "Secret", True),
    ("v1", "configmaps", "ConfigMap", True),
    ("v1", "pods", "Pod", True),
    ("apps/v1", "deployments", "Deployment", True),
    ("batch/v1", "jobs", "Job", True),
    ("autoscaling/v2", "horizontalpodautoscalers", "HorizontalPodAutoscaler", True),
    ("policy/v1", "poddisruptionbudgets", "PodDisruptionBudget", True),
    ("rbac.authorization.k8s.io/v1", "roles", "Role", True),
    ("rbac.authorization.k8s.io/v1", "rolebindings", "RoleBinding", True),
    ("rbac.authorization.k8s.io/v1", "clusterroles", "ClusterRole", False),
    ("rbac.authorization.k8s.io/v1", "clusterrolebindings", "ClusterRoleBinding", False),
    (
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        False,
    ),
    ("monitoring.coreos.com/v1", "servicemonitors", "ServiceMonitor", True),
]


def _discovery_documents() -> dict[str, dict[str, Any]]:
    resources = list(_BUILTIN_RESOURCES)
    for crd in generate_crds():
        names = crd["spec"]["names"]
        gv = f"{crd['spec']['group']}/{crd['spec']['versions'][0]['name']}"
        resources.append((gv, names["plural"], names["kind"], True))
    by_gv: dict[str, list[dict[str, Any]]] = {}
    for gv, plural, kind, namespaced in resources:
        by_gv.setdefault(gv, []).append(
            {
                "name": plural,
                "singularName": kind.lower(),
                "kind": kind,
                "namespaced": namespaced,
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
            }
        )
    docs: dict[str, dict[str, Any]] = {
        "/api": {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
    }
    groups = []
    for gv, entries in by_gv.items():
        url = "/api/v1" if gv == "v1" else f"/apis/{gv}"
        docs[url] = {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": gv,
            "resources": entries,
        }
        if gv != "v1":
            group, version = gv.split("/")
            ref = {"groupVersion": gv, "version": version}
            groups.append({"name": group, "versions": [ref], "preferredVersion": ref})
    docs["/apis"] = {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
    return docs


@pytest.fixture(scope="session")
def discovery_kubeconfig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A kubeconfig whose server answers only API discovery (no objects, no validation):
    enough for ``kubectl create --dry-run=client`` to map kinds to resources."""
    docs = _discovery_documents()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            doc = docs.get(self.path.split("?", 1)[0])
            body = json.dumps(doc if doc is not None else {"kind": "Status", "code": 404})
            self.send_response(200 if doc is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = tmp_path_factory.mktemp("kube") / "config"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "d", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}
                ],
                "contexts": [
                    {"name": "d", "context": {"cluster": "d", "namespace": "orchestrator"}}
                ],
                "current-context": "d",
                "users": [],
            }
        )
    )
    try:
        yield config
    finally:
        server.shutdown()
        server.server_close()
