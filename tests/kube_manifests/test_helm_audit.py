"""The chart and the audit trail: each API pod its own chain, the signing key from a Secret
when one is named."""

from __future__ import annotations

from typing import Any

from tests.kube_manifests.conftest import helm_template
from tests.kube_manifests.test_helm_chart import by_kind, env_of


def _api(docs: list[dict[str, Any]]) -> dict[str, Any]:
    [api] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    return api


def test_each_api_pod_writes_its_own_chain(rendered_default: list[dict[str, Any]]) -> None:
    pod = _api(rendered_default)["spec"]["template"]["spec"]
    env = env_of(pod["containers"][0])
    assert env["ORCH_AUDIT__WRITER"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert "ORCH_AUDIT__SIGNING_KEY_FILE" not in env
    assert all(v["name"] != "audit-signing-key" for v in pod["volumes"])


def test_the_signing_key_comes_from_the_named_secret(helm: str) -> None:
    docs = helm_template(helm, "--set", "audit.signingKeySecret=trail-key")
    pod = _api(docs)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    path = env_of(container)["ORCH_AUDIT__SIGNING_KEY_FILE"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == "audit-signing-key"]
    assert path == f"{mount['mountPath']}/audit-signing.key" and mount["readOnly"] is True
    [volume] = [v for v in pod["volumes"] if v["name"] == "audit-signing-key"]
    assert volume["secret"]["secretName"] == "trail-key"
    assert volume["secret"]["items"] == [{"key": "audit-signing.key", "path": "audit-signing.key"}]
