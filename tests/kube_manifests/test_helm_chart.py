"""The Helm chart: lint, render with default and GPU values, the restricted Pod Security
profile on every pod, GPU placement reaching the operator, RBAC equal to manifests/rbac."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from orchestrator.resources.kinds import KINDS
from tests.kube_manifests.conftest import (
    CHART,
    GPU_VALUES,
    MANIFESTS,
    helm_template,
    load_docs,
    run_tool,
)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            out.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
        elif doc["kind"] == "Pod":
            out.append((doc["metadata"]["name"], doc["spec"]))
    return out


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_helm_lint_passes_with_default_and_gpu_values(helm: str) -> None:
    for args in ([], ["-f", str(GPU_VALUES)]):
        proc = run_tool(helm, "lint", "--strict", str(CHART), *args)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 chart(s) failed" in proc.stdout


def test_default_render_has_the_documented_objects(rendered_default: list[dict[str, Any]]) -> None:
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in rendered_default)
    assert kinds == [
        ("Deployment", "orch-orchestrator-api"),
        ("Deployment", "orch-orchestrator-operator"),
        ("Role", "orch-orchestrator-api"),
        ("Role", "orch-orchestrator-operator"),
        ("Role", "orch-orchestrator-training"),
        ("RoleBinding", "orch-orchestrator-api"),
        ("RoleBinding", "orch-orchestrator-operator"),
        ("RoleBinding", "orch-orchestrator-training"),
        ("Secret", "orch-orchestrator-api-keys"),
        ("Service", "orch-orchestrator-api"),
        ("ServiceAccount", "orch-orchestrator"),
        ("ServiceAccount", "orch-orchestrator-api"),
        ("ServiceAccount", "orch-orchestrator-training"),
    ]
    assert not by_kind(rendered_default, "ClusterRole")
    [operator] = [
        d
        for d in rendered_default
        if d["metadata"]["name"].endswith("-operator") and d["kind"] == "Deployment"
    ]
    [api] = [
        d
        for d in rendered_default
        if d["metadata"]["name"].endswith("-api") and d["kind"] == "Deployment"
    ]
    assert operator["spec"]["template"]["spec"]["containers"][0]["command"] == ["orch", "operator"]
    assert api["spec"]["template"]["spec"]["containers"][0]["command"][:4] == [
        "orch",
        "server",
        "--host",
        "0.0.0.0",
    ]
    # The API pod binds 0.0.0.0 behind its Service, TLS terminated in front (an Ingress).
    api_env = env_of(api["spec"]["template"]["spec"]["containers"][0])
    assert api_env["ORCH_SERVER__ALLOW_INSECURE_HTTP"] == "true"
    gpu_env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert json.loads(gpu_env["ORCH_KUBE__GPU_NODE_SELECTOR"]) == {}
    assert gpu_env["ORCH_KUBE__GPU_RUNTIME_CLASS_NAME"] == ""
    assert gpu_env["ORCH_KUBE__TRAINING_SERVICE_ACCOUNT"] == "orch-orchestrator-training"
    assert gpu_env["ORCH_KUBE__CREDENTIALS_SECRET"] == "orchestrator-object-store"
    assert gpu_env["ORCH_KUBE__KEYRING_SECRET"] == "orchestrator-keyring"
    # The operator passes the object store's and keyring's Secrets on by name; the Secret
    # values it gets (from kubelet, not through the API) are the key it reads the API pods'
    # traffic with and the object store's keys, with the keyring (copied by its init
    # container), to read transform jobs' progress records.
    from_secrets = {k for k, v in gpu_env.items() if isinstance(v, dict) and "secretKeyRef" in v}
    assert from_secrets == {"ORCH_API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    operator_pod = operator["spec"]["template"]["spec"]
    assert [c["name"] for c in operator_pod["initContainers"]] == ["keyring"]
    assert gpu_env["ORCH_HOME"] == "/var/lib/orchestrator"


def test_helm_installs_the_generated_crds(helm: str) -> None:
    docs = helm_template(helm, "--include-crds")
    crds = {d["metadata"]["name"] for d in by_kind(docs, "CustomResourceDefinition")}
    expected = {
        d["metadata"]["name"] for p in (MANIFESTS / "crds").glob("*.yaml") for d in load_docs(p)
    }
    assert crds == expected and len(crds) == len(KINDS)


def test_gpu_values_reach_the_operator(rendered_gpu: list[dict[str, Any]]) -> None:
    [operator] = [
        d
        for d in by_kind(rendered_gpu, "Deployment")
        if d["metadata"]["name"].endswith("-operator")
    ]
    env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert json.loads(env["ORCH_KUBE__GPU_NODE_SELECTOR"]) == {"nvidia.com/gpu.present": "true"}
    assert json.loads(env["ORCH_KUBE__GPU_TOLERATIONS"]) == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert env["ORCH_KUBE__GPU_RUNTIME_CLASS_NAME"] == "nvidia"


def test_network_isolation_values_reach_the_operators_typed_settings(
    helm: str, rendered_default: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.kube.operator import load_kube_settings
    from orchestrator.settings import KubeSettings, Settings

    def operator_settings(docs: list[dict[str, Any]]) -> KubeSettings:
        """What the operator reads from the environment the chart gives it."""
        [operator] = [
            d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")
        ]
        env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
        with monkeypatch.context() as m:
            for key in [k for k in os.environ if k.startswith("ORCH_")]:
                m.delenv(key)
            for key, value in env.items():
                if isinstance(value, str):  # not the downward API's
                    m.setenv(key, value)
            return load_kube_settings(Settings())

    # Not configured: the operator refuses isolated jobs (no egress for their steps).
    default = operator_settings(rendered_default)
    assert default.network_isolation_egress is None
    assert default.peer_wait_seconds == 600
    assert default.algorithms_image == "orchestrator/algorithms:0.1.0"
    egress = [
        {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"port": 6443}]},
        {
            "to": [{"namespaceSelector": {"matchLabels": {"name": "storage"}}}],
            "ports": [{"port": 9000, "protocol": "TCP"}],
        },
    ]
    docs = helm_template(
        helm, "--set-json", f"training.networkIsolation.egress={json.dumps(egress)}"
    )
    configured = operator_settings(docs).network_isolation_egress
    assert configured is not None
    assert [r.manifest() for r in configured] == [
        {
            "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
            "ports": [{"protocol": "TCP", "port": 6443}],
        },
        {
            "to": [{"namespaceSelector": {"matchLabels": {"name": "storage"}}}],
            "ports": [{"protocol": "TCP", "port": 9000}],
        },
    ]


def test_service_monitor_only_when_enabled_and_its_crd_exists(
    helm: str, rendered_default: list[dict[str, Any]], rendered_gpu: list[dict[str, Any]]
) -> None:
    assert not by_kind(rendered_default, "ServiceMonitor")
    [monitor] = by_kind(rendered_gpu, "ServiceMonitor")
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # Enabled, but the cluster has no ServiceMonitor API: nothing rendered, nothing fails.
    assert not by_kind(
        helm_template(helm, "--set", "serviceMonitor.enabled=true"), "ServiceMonitor"
    )


def test_every_pod_meets_the_restricted_profile(
    rendered_default: list[dict[str, Any]], rendered_gpu: list[dict[str, Any]]
) -> None:
    specs = pod_specs(rendered_default) + pod_specs(rendered_gpu)
    assert len(specs) == 4
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["seccompProfile"]["type"] == "RuntimeDefault", name
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
        for container in spec.get("initContainers", []) + spec["containers"]:
            where = f"{name}/{container['name']}"
            sc = container["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc.get("privileged") is not True, where
            assert "resources" in container and container["resources"]["limits"], where
            # A read-only root: whatever is written goes to an emptyDir.
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {v["name"]: v for v in spec["volumes"]}
            assert "emptyDir" in volumes[mounts["/var/lib/orchestrator"]], where
            if container["name"] != "keyring":
                assert "emptyDir" in volumes[mounts["/tmp"]], where


def test_the_api_reads_secrets_by_reference_only(rendered_default: list[dict[str, Any]]) -> None:
    [api] = [
        d for d in by_kind(rendered_default, "Deployment") if d["metadata"]["name"].endswith("-api")
    ]
    spec = api["spec"]["template"]["spec"]
    # Its own account, whose Role reaches the custom resources (its store).
    assert spec["serviceAccountName"].endswith("-api")
    assert spec["automountServiceAccountToken"] is True
    env = env_of(spec["containers"][0])
    assert env["AWS_ACCESS_KEY_ID"] == {
        "secretKeyRef": {"name": "orchestrator-object-store", "key": "AWS_ACCESS_KEY_ID"}
    }
    assert env["ORCH_OBJECTS__URL"] == "s3://orchestrator"
    [keyring] = [v for v in spec["volumes"] if v["name"] == "master-key"]
    assert keyring["secret"]["secretName"] == "orchestrator-keyring"
    # The only Secret the chart makes is the API keys' (admin key and hashes), kept on upgrade.
    [keys] = by_kind(rendered_default, "Secret")
    assert keys["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    [mounted] = [v for v in spec["volumes"] if v["name"] == "api-keys"]
    assert mounted["secret"]["secretName"] == keys["metadata"]["name"]


def test_with_the_defaults_the_api_keeps_no_state_and_runs_no_work(
    rendered_default: list[dict[str, Any]],
) -> None:
    """The custom resources are the store: no database, no backend, keys from a Secret; its
    only writable volumes are scratch (the keyring's private copy, /tmp)."""
    [api] = [
        d for d in by_kind(rendered_default, "Deployment") if d["metadata"]["name"].endswith("-api")
    ]
    spec = api["spec"]["template"]["spec"]
    env = env_of(spec["containers"][0])
    assert env["ORCH_DESIRED_STATE"] == "kubernetes"
    assert env["ORCH_API_KEYS_FILE"] == "/etc/orchestrator/api-keys/keys.json"
    assert not {"ORCH_DATABASE_URL", "ORCH_BACKEND"} & set(env)
    assert not [v for v in spec["volumes"] if "persistentVolumeClaim" in v]
    assert {v["name"] for v in spec["volumes"] if "emptyDir" in v} == {"home", "tmp"}
    # The operator reads the API pods' traffic with the generated key.
    [operator] = [
        d
        for d in by_kind(rendered_default, "Deployment")
        if d["metadata"]["name"].endswith("-operator")
    ]
    op_env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    assert op_env["ORCH_API_KEY"]["secretKeyRef"]["key"] == "admin-key"
    assert op_env["ORCH_KUBE__API_SELECTOR"] == (
        "app.kubernetes.io/instance=orch,app.kubernetes.io/component=api"
    )
    labels = api["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "orch"
    assert labels["app.kubernetes.io/component"] == "api"


def _rules(role: dict[str, Any]) -> list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]]:
    return sorted(
        (tuple(sorted(r["apiGroups"])), tuple(sorted(r["resources"])), tuple(sorted(r["verbs"])))
        for r in role["rules"]
    )


def _by_suffix(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """Objects of ``kind`` keyed by their role in the release ("operator", "training", ...)."""
    return {d["metadata"]["name"].rsplit("-", 1)[-1]: d for d in docs if d["kind"] == kind}


def test_chart_rbac_equals_manifests_rbac(rendered_default: list[dict[str, Any]]) -> None:
    manifests = [d for p in sorted((MANIFESTS / "rbac").glob("*.yaml")) for d in load_docs(p)]
    chart_roles = _by_suffix(rendered_default, "Role")
    manifest_roles = _by_suffix(manifests, "Role")
    assert sorted(chart_roles) == sorted(manifest_roles) == ["api", "operator", "training"]
    for key, role in chart_roles.items():
        assert _rules(role) == _rules(manifest_roles[key]), key
    assert not by_kind(manifests, "ClusterRole") and not by_kind(manifests, "ClusterRoleBinding")
    accounts = {d["metadata"]["name"]: d for d in by_kind(rendered_default, "ServiceAccount")}
    for key, binding in _by_suffix(rendered_default, "RoleBinding").items():
        manifest_binding = _by_suffix(manifests, "RoleBinding")[key]
        assert binding["roleRef"]["kind"] == manifest_binding["roleRef"]["kind"] == "Role"
        assert binding["roleRef"]["name"] == chart_roles[key]["metadata"]["name"]
        [subject] = binding["subjects"]
        assert subject["kind"] == "ServiceAccount" and subject["name"] in accounts
    training = accounts["orch-orchestrator-training"]
    assert training["automountServiceAccountToken"] is False


def test_rbac_is_least_privilege(rendered_default: list[dict[str, Any]]) -> None:
    roles = _by_suffix(rendered_default, "Role")
    for role in roles.values():
        for groups, resources, verbs in _rules(role):
            assert "*" not in groups + resources + verbs
            assert "secrets" not in resources
            assert not {"escalate", "bind", "impersonate"} & set(verbs)
    operator = {r: v for _, rs, v in _rules(roles["operator"]) for r in rs}
    # Pods: observed, and deleted for a forced stop or a crash-looping replica; never created.
    assert operator["pods"] == ("delete", "get", "list", "watch")
    assert operator["pods/log"] == ("get",)
    # Isolated training attempts: created with the Job, removed with it; nothing more.
    assert operator["networkpolicies"] == ("create", "delete", "list")
    assert _rules(roles["training"]) == [(("",), ("pods",), ("get",))]
    # Every kind's custom resource (KINDS: one source of their plurals), and no other.
    kinds = tuple(sorted(k.crd_plural for k in KINDS.values()))
    assert "transformjobs" in kinds
    for sub in ("status", "finalizers"):
        assert {f"{k}/{sub}" for k in kinds} <= set(operator), sub
    write = ("create", "delete", "get", "list", "patch", "update", "watch")
    assert _rules(roles["api"]) == sorted(
        [
            (("orchestrator.dev",), kinds, write),
            (("orchestrator.dev",), ("endpoints/status",), ("get", "patch")),
            (("batch",), ("jobs",), ("get", "list")),
            (("",), ("pods",), ("get", "list")),
            (("",), ("pods/log",), ("get",)),
        ]
    )


def test_every_operator_setting_the_chart_passes_is_one_the_operator_reads(
    rendered_default: list[dict[str, Any]],
) -> None:
    from orchestrator.settings import KubeSettings, Settings

    names: set[str] = set()
    for doc in rendered_default:
        if doc.get("kind") != "Deployment":
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            names |= {e["name"] for e in container.get("env", [])}
    kube = {n.removeprefix("ORCH_KUBE__").lower() for n in names if n.startswith("ORCH_KUBE__")}
    assert kube, "the operator gets its settings from ORCH_KUBE__* variables"
    assert kube <= set(KubeSettings.model_fields), kube - set(KubeSettings.model_fields)
    top = {n.removeprefix("ORCH_").split("__")[0].lower() for n in names if n.startswith("ORCH_")}
    assert top <= set(Settings.model_fields), top - set(Settings.model_fields)


def test_the_generated_secret_holds_a_working_sigv4_access_key(
    rendered_default: list[dict[str, Any]], tmp_path: Path
) -> None:
    """The chart's Secret carries an admin access key for boto3 and the SageMaker SDK, and its
    keys.json is one the API pods read (FileKeys): a request signed with that key verifies."""
    from orchestrator import sigv4
    from orchestrator.api.aws.credentials import AccessKeys
    from orchestrator.api.keyfile import FileKeys
    from orchestrator.objects import LocalKeyring

    [secret] = by_kind(rendered_default, "Secret")
    data = secret["stringData"]
    akid, aws_secret = data["aws-access-key-id"], data["aws-secret-access-key"]
    assert akid.startswith("AKIA") and len(akid) == 20 and len(aws_secret) == 40
    keys_file = tmp_path / "keys.json"
    keys_file.write_text(data["keys.json"])
    keys = AccessKeys(FileKeys(keys_file), LocalKeyring(tmp_path / "keyring"))
    derived, principal = keys.signing_key(akid, "20261202", "us-east-1", "sagemaker")
    assert principal.role == "admin"
    assert derived == sigv4.signing_key(aws_secret, "20261202", "us-east-1", "sagemaker")


def test_the_generated_secret_seals_console_sessions_for_every_api_replica(
    rendered_default: list[dict[str, Any]], tmp_path: Path
) -> None:
    """console-secret is a sealing key the API pods load (mounted where
    ORCH_CONSOLE__SECRET_FILE says): a session sealed by one replica opens in another."""
    from orchestrator.console.sessions import Sessions, load_or_create_secret

    [secret] = by_kind(rendered_default, "Secret")
    (tmp_path / "console-secret").write_text(secret["stringData"]["console-secret"])
    key = load_or_create_secret(tmp_path / "console-secret")
    one, other = Sessions(key, 60), Sessions(key, 60)
    value, session = one.open_new("orch_k")
    assert other.open(value) == session
    [api] = [c for name, spec in pod_specs(rendered_default) for c in spec["containers"]
             if c["name"] == "api"]  # fmt: skip
    assert env_of(api)["ORCH_CONSOLE__SECRET_FILE"] == "/etc/orchestrator/api-keys/console-secret"
