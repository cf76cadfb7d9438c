"""Identities on a cluster: a keys file (a mounted Secret) carries identities, their policies,
and keys that act as them; the invocation path reads endpoint tags from the routes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator import sigv4
from orchestrator.access import Principal, authorize
from orchestrator.api.auth import authenticate
from orchestrator.api.keyfile import FileKeys
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.dataplane import wire
from orchestrator.dataplane.front import DataPlaneFront
from orchestrator.dataplane.plane import DataPlane, DataPlaneSettings
from orchestrator.dataplane.recorder import LocalSink
from orchestrator.errors import AuthenticationError, PermissionDeniedError, ValidationError
from orchestrator.iam import MANAGED, OWNER_TAG, policy_set

ARN = "arn:aws:sagemaker:us-east-1:000000000000"
ONLY_EP1 = {"Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                           "Resource": f"{ARN}:endpoint/ep-1"}]}  # fmt: skip


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def keys_file(tmp_path: Path, **doc: object) -> FileKeys:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(doc))
    return FileKeys(path)


def test_keys_in_the_file_act_as_their_identity(tmp_path: Path) -> None:
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    keys = keys_file(
        tmp_path,
        identities=[{"UserName": "svc", "Kind": "service", "InlinePolicies": {"ep-1": ONLY_EP1},
                     "Roles": ["read-only"]}],
        keys=[
            {"KeyId": "aaaaaaaaaaaa", "SecretHash": _hash("s1"), "Identity": "svc"},
            {"KeyId": "bbbbbbbbbbbb", "SecretHash": _hash("s2"), "Identity": "svc",
             "Role": "read-only"},
            {"KeyId": "cccccccccccc", "SecretHash": _hash("s3"), "Identity": "svc",
             "Expires": past},
            {"KeyId": "dddddddddddd", "SecretHash": _hash("s4"), "Role": "invoke"},
        ],
    )  # fmt: skip
    own = authenticate(keys, "orch_aaaaaaaaaaaa_s1")
    assert own.name == "svc" and own.policies.names == ("ep-1",)
    authorize(own, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/ep-1")
    with pytest.raises(PermissionDeniedError):
        authorize(own, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/ep-2")
    as_role = authenticate(keys, "orch_bbbbbbbbbbbb_s2")
    authorize(as_role, "sagemaker:ListModels", "*")
    with pytest.raises(AuthenticationError):
        authenticate(keys, "orch_cccccccccccc_s3")  # expired
    first = authenticate(keys, "orch_dddddddddddd_s4")  # a first key: its role's policies
    assert first.role == "invoke" and first.policies.names == ("Invoker",)
    authorize(first, "sagemaker:InvokeEndpoint", f"{ARN}:endpoint/any")
    with pytest.raises(PermissionDeniedError, match="change them there"):
        keys.add_identity("x", kind="user", document={}, now=datetime.now(UTC))


def test_a_bad_identity_in_the_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"identities\[0\] \('svc'\).*ManagedPolicies"):
        keys_file(tmp_path, identities=[{"UserName": "svc", "ManagedPolicies": ["Root"]}])


def test_an_identity_in_the_file_acts_for_its_account(tmp_path: Path) -> None:
    from orchestrator import tenancy

    keys = keys_file(
        tmp_path,
        identities=[{"UserName": "t", "Account": "123456789012", "Roles": ["admin"]},
                    {"UserName": "r", "Roles": ["admin"]}],
        keys=[{"KeyId": "aaaaaaaaaaaa", "SecretHash": _hash("s1"), "Identity": "t",
               "Role": "admin"},
              {"KeyId": "bbbbbbbbbbbb", "SecretHash": _hash("s2"), "Identity": "r",
               "Role": "admin"}],
    )  # fmt: skip
    assert authenticate(keys, "orch_aaaaaaaaaaaa_s1").account == "123456789012"
    assert authenticate(keys, "orch_bbbbbbbbbbbb_s2").account == tenancy.ROOT
    with tenancy.acting_as("123456789012"):
        assert [i.name for i in keys.list_identities()] == ["t"]
        assert keys.get_identity("r") is None and keys.get_api_key("bbbbbbbbbbbb") is None
        assert [k.key_id for k in keys.list_api_keys()] == ["aaaaaaaaaaaa"]
    with pytest.raises(ValidationError, match=r"identities\[0\] \('t'\).*12 digits"):
        keys_file(tmp_path, identities=[{"UserName": "t", "Account": "12"}])


def test_the_invocation_path_reads_the_endpoints_tags_from_its_route() -> None:
    scientist = Principal("k", "alice", "", policy_set([MANAGED["DataScientist"]], "alice"))
    plane = DataPlane(
        routes=RoutingTable(),
        key_checker=lambda _key: scientist,
        signing_key_source=lambda a, d, r, s: (sigv4.signing_key("s", d, r, s), scientist),
        endpoint_status=lambda _name: None,
        sink=LocalSink(None),
        settings=DataPlaneSettings(6 << 20, 60.0, 64),
    )
    front = DataPlaneFront(lambda *_args: None, plane)  # type: ignore[arg-type,return-value]
    variant = VariantRoute("main", 1.0, ("http://127.0.0.1:9",), config="c")
    mine = EndpointRoute("Mine", False, (variant,), ((OWNER_TAG, "alice"),))
    theirs = EndpointRoute("theirs", False, (variant,), ((OWNER_TAG, "bob"),))
    # The tags cross to router workers with the routes.
    (back,) = wire.routes_from_wire(wire.routes_to_wire([mine]))
    assert back == mine
    front._authorize(scientist, "Mine", back)
    with pytest.raises(PermissionDeniedError, match="endpoint/theirs"):
        front._authorize(scientist, "theirs", theirs)
