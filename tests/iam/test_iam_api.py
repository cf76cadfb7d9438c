"""Identities, keys and policies through the REST API: every route authorized, users and
their keys, expiry, revocation, rotation, policies refused by name, and what each managed
policy lets an identity do (the invocation path included)."""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import authenticate, new_api_key
from orchestrator.api.aws import cloudwatch, logs, sagemaker
from orchestrator.api.deps import ACTION_ATTRIBUTE
from orchestrator.api.identities import expiry
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.errors import AuthenticationError, ValidationError
from orchestrator.iam import ACTIONS
from orchestrator.settings import Settings

pytestmark = pytest.mark.anyio
ARN = "arn:aws:sagemaker:us-east-1:000000000000"
UNAUTHENTICATED = {"/healthz", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# The console's page and files, and its login (routes.console): the key is checked there.
UNAUTHENTICATED |= {"/console", "/console/", "/console/session"}
STATIC_MOUNTS = {"/docs-static", "/console/static"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Api:
    client: httpx.AsyncClient
    plane: ControlPlane
    app: Any
    admin: dict[str, str]

    async def call(
        self, method: str, path: str, body: Any = None, key: dict[str, str] | None = None
    ) -> httpx.Response:
        return await self.client.request(method, path, json=body, headers=key or self.admin)

    async def user(self, name: str, **policies: Any) -> dict[str, str]:
        """A new identity and a bearer key of its own; the key's Authorization header."""
        r = await self.call("POST", "/api/v1/users", {"UserName": name, **policies})
        assert r.status_code == 201, r.text
        r = await self.call("POST", f"/api/v1/users/{name}/keys", {"Name": "k"})
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['ApiKey']}"}


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    plane = build_control_plane(settings, backend=FakeBackend())
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch") as c,
    ):
        yield Api(c, plane, app, {"Authorization": f"Bearer {key}"})
    plane.store.close()


def _fastapi(app: Any) -> FastAPI:
    """The FastAPI app behind the data plane's front and the AWS gateway."""
    while not isinstance(app, FastAPI):
        app = app.api if hasattr(app, "api") else app.app  # the front, the gateway; audit
    return app


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, those of included routers too (FastAPI keeps them apart)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out.extend(_routes(inner.routes) if inner is not None else [route])
    return out


# --- every route is authorized ----------------------------------------------------------------
async def test_every_route_is_authorized_through_the_one_check(api: Api) -> None:
    unchecked = []
    seen = 0
    for route in _routes(_fastapi(api.app).routes):
        if isinstance(route, Mount) and route.path not in STATIC_MOUNTS:
            unchecked.append(route.path)
            continue
        if not isinstance(route, (APIRoute, Route)) or route.path in UNAUTHENTICATED:
            continue
        if not isinstance(route, APIRoute):
            unchecked.append(route.path)
            continue
        actions = [
            getattr(d.call, ACTION_ATTRIBUTE)
            for d in route.dependant.dependencies
            if hasattr(d.call, ACTION_ATTRIBUTE)
        ]
        if len(actions) != 1 or actions[0] not in ACTIONS:
            unchecked.append(f"{sorted(route.methods)} {route.path} {actions}")
        seen += 1
    assert not unchecked, f"routes not authorized by a known action: {unchecked}"
    assert seen > 50


def test_every_aws_operation_names_a_catalog_action(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    plane = build_control_plane(settings, backend=FakeBackend())
    tables = [
        sagemaker.operations(plane),
        logs.operations(plane),
        cloudwatch.CloudWatchService(plane).operations,
    ]
    for table in tables:
        for op in table.values():
            assert op.action in ACTIONS, op
    assert sagemaker.operations(plane)["DescribeEndpoint"].target({"EndpointName": "Ep"})[0] == (
        f"{ARN}:endpoint/ep"
    )
    plane.store.close()
    # S3's operations are chosen in code: every action string in it is a catalog action.
    import re

    source = Path(sagemaker.__file__).with_name("s3.py").read_text()
    named = set(re.findall(r'"(s3:\w+)"', source))
    assert named and named <= set(ACTIONS)


# --- identities and keys ----------------------------------------------------------------------
async def test_users_and_their_keys(api: Api) -> None:
    alice = await api.user("alice", ManagedPolicies=["ReadOnly"], Roles=["invoke"])
    r = await api.call("GET", "/api/v1/users/alice")
    assert r.status_code == 200
    doc = r.json()
    assert doc["Kind"] == "user" and doc["ManagedPolicies"] == ["ReadOnly"]
    assert [k["Name"] for k in doc["Keys"]] == ["k"] and "ApiKey" not in doc["Keys"][0]
    assert (await api.call("GET", "/api/v1/training-jobs", key=alice)).status_code == 200
    # Last use is recorded.
    keys = (await api.call("GET", "/api/v1/users/alice/keys")).json()["Keys"]
    assert keys[0]["LastUsed"] is not None
    # A key issued as a role carries the role's policies only.
    r = await api.call("POST", "/api/v1/users/alice/keys", {"Name": "inv", "Role": "invoke"})
    as_invoker = {"Authorization": f"Bearer {r.json()['ApiKey']}"}
    assert (await api.call("GET", "/api/v1/training-jobs", key=as_invoker)).status_code == 403
    r = await api.call("POST", "/api/v1/users/alice/keys", {"Name": "x", "Role": "admin"})
    assert r.status_code == 400 and r.json()["field"] == "Role"
    # Listed, not shown again; a SigV4 access key too.
    r = await api.call("POST", "/api/v1/users/alice/keys", {"Name": "sdk", "Kind": "access"})
    assert r.status_code == 201 and r.json()["KeyId"].startswith("AKIA")
    assert r.json()["SecretAccessKey"]
    listed = (await api.call("GET", "/api/v1/users")).json()["Users"]
    assert [u["UserName"] for u in listed] == ["alice"]
    # Deleting the identity revokes its keys.
    assert (await api.call("DELETE", "/api/v1/users/alice")).status_code == 200
    assert (await api.call("GET", "/api/v1/training-jobs", key=alice)).status_code == 401
    assert (await api.call("GET", "/api/v1/users/alice")).status_code == 404


async def test_a_bad_identity_is_refused_naming_the_field(api: Api) -> None:
    for body, field in (
        ({"UserName": "a b"}, "UserName"),
        ({"UserName": "a", "ManagedPolicies": ["Root"]}, "ManagedPolicies[0]"),
        ({"UserName": "a", "Roles": ["god"]}, "Roles[0]"),
        ({"UserName": "a", "InlinePolicies": {"p": {"Statement": [
            {"Effect": "Allow", "Action": "sagemaker:Invoke", "Resource": "*"}]}}},
         "InlinePolicies.p.Statement[0].Action[0]"),
        ({"UserName": "a", "InlinePolicies": {"p": {"Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "arn:aws:sagemaker:endpoint/x"}]}}},
         "InlinePolicies.p.Statement[0].Resource[0]"),
    ):  # fmt: skip
        r = await api.call("POST", "/api/v1/users", body)
        assert r.status_code == 400 and r.json()["field"] == field, r.text
    await api.user("a")
    r = await api.call("POST", "/api/v1/users", {"UserName": "a"})
    assert r.status_code == 409


async def test_revoked_expired_and_rotated_keys(api: Api) -> None:
    bob = await api.user("bob", ManagedPolicies=["ReadOnly"])
    key_id = bob["Authorization"].split("_")[1]
    r = await api.call("POST", f"/api/v1/users/bob/keys/{key_id}/rotate")
    assert r.status_code == 201 and r.json()["Replaced"] == key_id
    new = {"Authorization": f"Bearer {r.json()['ApiKey']}"}
    assert (await api.call("GET", "/api/v1/models", key=bob)).status_code == 401
    assert (await api.call("GET", "/api/v1/models", key=new)).status_code == 200
    r = await api.call("DELETE", f"/api/v1/users/bob/keys/{r.json()['KeyId']}")
    assert r.status_code == 200 and r.json()["Revoked"] is True
    assert (await api.call("GET", "/api/v1/models", key=new)).status_code == 401
    # Expired: the same 401 as a key that does not exist.
    past = datetime.now(UTC) - timedelta(seconds=1)
    old = new_api_key(api.plane.keys, name="old", role="", now=past, identity="bob",
                      expires_at=past)  # fmt: skip
    r = await api.call("GET", "/api/v1/models", key={"Authorization": f"Bearer {old}"})
    wrong = await api.call(
        "GET", "/api/v1/models", key={"Authorization": "Bearer orch_000000000000_x"}
    )
    assert r.status_code == wrong.status_code == 401 and r.json() == wrong.json()
    r = await api.call("POST", "/api/v1/users/bob/keys", {"Name": "x", "ExpiresInSeconds": 0})
    assert r.status_code == 400 and r.json()["field"] == "ExpiresInSeconds"
    # past what a date can hold (year 9999): refused naming the field, not an internal error
    huge = {"Name": "x", "ExpiresInSeconds": 10**12}
    r = await api.call("POST", "/api/v1/users/bob/keys", huge)
    assert r.status_code == 400 and r.json()["field"] == "ExpiresInSeconds"
    assert "3153600000" in r.json()["message"]
    with pytest.raises(ValidationError, match="ExpiresInSeconds must be 1 to 3153600000"):
        expiry(datetime.now(UTC), 10**12)  # a rotation's lifetime left goes through it too


# --- what the managed policies allow ----------------------------------------------------------
MODEL = {"ModelName": "m-{}", "PrimaryContainer": {"Image": "example/serve:1"}}


def model(owner: str) -> dict[str, Any]:
    return {**MODEL, "ModelName": f"m-{owner}"}


async def test_read_only_cannot_create(api: Api) -> None:
    ro = await api.user("ro", ManagedPolicies=["ReadOnly"])
    r = await api.call("POST", "/api/v1/models", model("ro"), key=ro)
    assert r.status_code == 403 and "sagemaker:CreateModel" in r.json()["message"]
    assert (await api.call("GET", "/api/v1/models", key=ro)).status_code == 200


async def test_a_data_scientist_cannot_touch_another_ones_resources(api: Api) -> None:
    alice = await api.user("alice", ManagedPolicies=["DataScientist"])
    bob = await api.user("bob", ManagedPolicies=["DataScientist"])
    assert (await api.call("POST", "/api/v1/models", model("a"), key=alice)).status_code == 201
    r = await api.call("GET", "/api/v1/models/m-a", key=alice)
    assert r.status_code == 200
    assert {"Key": "orchestrator:owner", "Value": "alice"} in r.json()["Tags"]
    for method, path in (("GET", "/api/v1/models/m-a"), ("DELETE", "/api/v1/models/m-a")):
        r = await api.call(method, path, key=bob)
        assert r.status_code == 403, (method, path, r.text)
    # Nor claim it by retagging.
    r = await api.call("POST", "/api/v1/tags", {"ResourceArn": f"{ARN}:model/m-a",
                       "Tags": [{"Key": "orchestrator:owner", "Value": "bob"}]}, key=alice)  # fmt: skip
    assert r.status_code == 400
    # A create that names another owner is stamped with the caller anyway.
    body = {**model("b"), "Tags": [{"Key": "orchestrator:owner", "Value": "alice"}]}
    assert (await api.call("POST", "/api/v1/models", body, key=bob)).status_code == 201
    assert (await api.call("GET", "/api/v1/models/m-b", key=alice)).status_code == 403
    assert (await api.call("DELETE", "/api/v1/models/m-b", key=bob)).status_code == 200
    # Identities are an administrator's.
    r = await api.call("POST", "/api/v1/users", {"UserName": "eve"}, key=alice)
    assert r.status_code == 403


async def test_deny_overrides_allow_and_tag_conditions(api: Api) -> None:
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "sagemaker:Delete*", "Resource": "*",
         "Condition": {"StringEquals": {"aws:ResourceTag/stage": "prod"}}},
    ]}  # fmt: skip
    ops = await api.user("ops", InlinePolicies={"no-prod-deletes": policy})
    for name, stage in (("m-prod", "prod"), ("m-dev", "dev")):
        body = {**MODEL, "ModelName": name, "Tags": [{"Key": "stage", "Value": stage}]}
        assert (await api.call("POST", "/api/v1/models", body, key=ops)).status_code == 201
    r = await api.call("DELETE", "/api/v1/models/m-prod", key=ops)
    assert r.status_code == 403 and "explicit Deny" in r.json()["message"]
    assert (await api.call("DELETE", "/api/v1/models/m-dev", key=ops)).status_code == 200


async def test_an_invoker_may_invoke_only_the_named_endpoint(api: Api) -> None:
    only = {"Statement": [{"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
                           "Resource": f"{ARN}:endpoint/ep-1"}]}  # fmt: skip
    svc = await api.user("svc", Kind="service", InlinePolicies={"ep-1": only})
    # Neither endpoint exists: the check comes first, so ep-1 is a 404 and ep-2 a 403.
    r = await api.call("POST", "/endpoints/ep-1/invocations", {"x": 1}, key=svc)
    assert r.status_code == 404, r.text
    r = await api.call("POST", "/endpoints/ep-2/invocations", {"x": 1}, key=svc)
    assert r.status_code == 403 and "sagemaker:InvokeEndpoint" in r.json()["message"]
    r = await api.call("GET", "/api/v1/endpoints", key=svc)
    assert r.status_code == 403


async def test_managed_policies_are_listed(api: Api) -> None:
    r = await api.call("GET", "/api/v1/policies")
    names = [p["PolicyName"] for p in r.json()["Policies"]]
    assert names == ["AdministratorAccess", "DataScientist", "Invoker", "ReadOnly"]


# --- timing ---------------------------------------------------------------------------------
def test_key_lookup_does_not_tell_whether_a_key_id_exists(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    plane = build_control_plane(settings, backend=FakeBackend())
    key = new_api_key(plane.keys, name="t", role="admin", now=datetime.now(UTC))
    key_id = key.split("_")[1]
    known, unknown = f"orch_{key_id}_{'x' * 43}", f"orch_{'0' * 12}_{'x' * 43}"

    def mean(presented: str) -> float:
        times = []
        for _ in range(300):
            t = time.perf_counter()
            with contextlib.suppress(AuthenticationError):
                authenticate(plane.keys, presented)
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    mean(known), mean(unknown)  # warm up
    a, b = mean(known), mean(unknown)
    plane.store.close()
    # Both are one store read and one hash comparison: within a loose factor of each other.
    assert 0.5 < a / b < 2.0, (a, b)


def test_a_route_action_outside_the_catalog_is_refused_when_the_route_is_made() -> None:
    from orchestrator.api.deps import authorized

    with pytest.raises(ValueError, match=r"orchestrator/iam/actions\.py"):
        authorized("audit:lookup")
