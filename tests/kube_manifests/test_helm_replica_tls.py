"""The chart with ``replicaTls.enabled=true``: the operator and the API pods both get replica
TLS; the API pods mount the replica CA Secret's certificate only (not its key) and are told
where it is; the operator, and only it, may make and update Secrets; off, none of it renders
(the default render, compared with manifests/rbac, keeps Secrets out of every Role)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.kube_manifests.conftest import helm_template
from tests.kube_manifests.test_helm_chart import _by_suffix, _rules, env_of


@pytest.fixture(scope="module")
def rendered_tls(helm: str) -> list[dict[str, Any]]:
    return helm_template(
        helm, "--set", "replicaTls.enabled=true", "--set", "replicaTls.caSecret=my-ca"
    )


def _deployment(docs: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    return _by_suffix(docs, "Deployment")[suffix]["spec"]["template"]["spec"]


def _container(docs: list[dict[str, Any]], suffix: str) -> dict[str, Any]:
    return _deployment(docs, suffix)["containers"][0]


def test_the_operator_issues_from_the_named_ca(rendered_tls: list[dict[str, Any]]) -> None:
    env = env_of(_container(rendered_tls, "operator"))
    assert env["ORCH_SERVING__REPLICA_TLS"] == "true"
    assert env["ORCH_KUBE__REPLICA_CA_SECRET"] == "my-ca"


def test_the_api_pods_verify_against_the_ca_certificate_only(
    rendered_tls: list[dict[str, Any]],
) -> None:
    pod = _deployment(rendered_tls, "api")
    api = pod["containers"][0]
    env = env_of(api)
    assert env["ORCH_SERVING__REPLICA_TLS"] == "true"
    assert env["ORCH_SERVING__REPLICA_CA_FILE"] == "/etc/orchestrator/replica-ca/ca.crt"
    [volume] = [v for v in pod["volumes"] if v["name"] == "replica-ca"]
    assert volume["secret"]["secretName"] == "my-ca"
    assert volume["secret"]["items"] == [{"key": "tls.crt", "path": "ca.crt"}]
    [mount] = [m for m in api["volumeMounts"] if m["name"] == "replica-ca"]
    assert mount == {
        "name": "replica-ca",
        "mountPath": "/etc/orchestrator/replica-ca",
        "readOnly": True,
    }


def test_only_the_operator_may_write_secrets_and_only_with_replica_tls(
    rendered_tls: list[dict[str, Any]], rendered_default: list[dict[str, Any]]
) -> None:
    roles = _by_suffix(rendered_tls, "Role")
    operator = {r: v for _, rs, v in _rules(roles["operator"]) for r in rs}
    assert operator["secrets"] == ("create", "delete", "get", "list", "patch", "update")
    for key in ("api", "training"):
        assert all("secrets" not in rs for _, rs, _ in _rules(roles[key])), key
    for role in _by_suffix(rendered_default, "Role").values():
        assert all("secrets" not in rs for _, rs, _ in _rules(role))
    for suffix in ("api", "operator"):
        env = env_of(_container(rendered_default, suffix))
        assert "ORCH_SERVING__REPLICA_TLS" not in env, suffix
