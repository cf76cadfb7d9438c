"""Tenancy on a cluster: a custom resource carries its account as the label
``orchestrator.dev/account`` (none for the server's own), and a caller sees only its own
account's, another's answering exactly as an absent one."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from kube_harness import NS
from kubernetes import client

from orchestrator import tenancy
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.kube.source import ACCOUNT_LABEL, CustomResources
from orchestrator.store import ListFilter

NOW = datetime(2026, 1, 1, tzinfo=UTC)
A, B = "111111111111", "222222222222"
MODEL = {"PrimaryContainer": {"Image": "example/serve:1"}}


def make(source: CustomResources, account: str | None, name: str) -> None:
    with tenancy.acting_as(account):
        source.create("Model", name, {"ModelName": name, **MODEL}, {}, phase="", active=False,
                      now=NOW)  # fmt: skip


def missing(call: object) -> str:
    with pytest.raises(NotFoundError) as e:
        call()  # type: ignore[operator]
    return e.value.message.replace("a-model", "N").replace("zz", "N")


def test_custom_resources_carry_their_account_and_show_only_the_caller_s(
    api: client.ApiClient,
) -> None:
    source = CustomResources(api, NS)
    make(source, A, "a-model")
    make(source, None, "root-model")
    custom = client.CustomObjectsApi(api)
    labels = custom.get_namespaced_custom_object(
        "orchestrator.dev", "v1alpha1", NS, "models", "a-model"
    )["metadata"].get("labels", {})
    assert labels == {ACCOUNT_LABEL: A}
    with tenancy.acting_as(None):
        assert source.get("Model", "a-model").account == A
        assert source.get("Model", "root-model").account == tenancy.ROOT
    with tenancy.acting_as(B):
        assert source.list("Model", ListFilter(limit=10))[0] == []
        assert source.find("Model", "a-model") is None
        assert missing(lambda: source.get("Model", "a-model")) == missing(
            lambda: source.get("Model", "zz")
        )
        assert missing(lambda: source.delete("Model", "a-model")) == missing(
            lambda: source.delete("Model", "zz")
        )
        with pytest.raises(ConflictError):  # names are unique in the namespace
            source.create("Model", "a-model", {"ModelName": "a-model", **MODEL}, {}, phase="",
                          active=False, now=NOW)  # fmt: skip
    with tenancy.acting_as(A):
        assert [r.name for r in source.list("Model", ListFilter(limit=10))[0]] == ["a-model"]
    with tenancy.acting_as(tenancy.ROOT):
        assert [r.name for r in source.list("Model", ListFilter(limit=10))[0]] == ["root-model"]
