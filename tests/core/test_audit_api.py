"""The audit trail through the API: every call recorded with the right fields, secrets never
recorded, refused invocations recorded, lookups, verify, the reserved bucket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from core_builders import training_doc

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.audit import AuditTrail
from orchestrator.backends.fake import FakeBackend
from orchestrator.settings import AuditSettings, Settings

JOBS = "/api/v1/training-jobs"
EVENTS = "/api/v1/audit/events"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Api:
    client: httpx.AsyncClient
    plane: ControlPlane
    key: str
    auth: dict[str, str]

    @property
    def trail(self) -> AuditTrail:
        assert self.plane.audit is not None
        return self.plane.audit

    async def events(self, **params: Any) -> list[dict[str, Any]]:
        r = await self.client.get(EVENTS, params=params, headers=self.auth)
        assert r.status_code == 200, r.text
        events: list[dict[str, Any]] = r.json()["Events"]
        return events

    async def last(self, event_name: str) -> dict[str, Any]:
        found = await self.events(EventName=event_name, MaxResults=1)
        assert found, f"no {event_name} recorded"
        return found[0]


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        audit=AuditSettings(flush_seconds=0.05),
    )
    plane = build_control_plane(settings, backend=FakeBackend())
    key = new_api_key(plane.store, name="alice", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://orch") as client,
    ):
        yield Api(client, plane, key, {"Authorization": f"Bearer {key}", "User-Agent": "t/1"})
    plane.store.close()


async def test_a_call_is_recorded_with_its_fields(api: Api) -> None:
    r = await api.client.post(JOBS, json=training_doc("job-1"), headers=api.auth)
    assert r.status_code == 201, r.text
    request_id = r.headers["x-request-id"]
    assert r.headers["x-amzn-requestid"] == request_id
    event = await api.last("CreateTrainingJob")
    key_id = api.key.split("_")[1]
    # the caller's account id: the server's own (settings.account_id)
    assert event["userIdentity"] == {"userName": "alice", "keyId": key_id,
                                     "accountId": "000000000000"}  # fmt: skip
    assert event["sourceIPAddress"] == "10.1.2.3"
    assert event["userAgent"] == "t/1"
    assert event["statusCode"] == 201
    assert event["errorCode"] is None
    assert event["requestID"] == request_id
    assert event["resources"] == ["arn:aws:sagemaker:us-east-1:000000000000:training-job/job-1"]
    assert event["requestParameters"]["TrainingJobName"] == "job-1"
    assert event["eventTime"].endswith("Z")

    r = await api.client.get(f"{JOBS}/job-1", headers=api.auth)
    described = await api.last("DescribeTrainingJob")
    assert described["resources"] == [event["resources"][0]]
    assert described["requestID"] == r.headers["x-request-id"]


async def test_every_route_called_is_recorded(api: Api) -> None:
    calls = [
        ("GET", JOBS),
        ("GET", "/api/v1/models"),
        ("GET", "/api/v1/endpoints/nope"),
        ("GET", "/api/v1/api-keys"),
        ("GET", "/metrics"),
    ]
    for method, path in calls:
        await api.client.request(method, path, headers=api.auth)
    events = await api.events(MaxResults=100)
    seen = {(e["httpMethod"], e["path"]) for e in events}
    assert set(calls) <= seen
    missing = next(e for e in events if e["path"] == "/api/v1/endpoints/nope")
    assert (missing["statusCode"], missing["errorCode"]) == (404, "ResourceNotFound")


async def test_a_refused_call_is_recorded_without_identity(api: Api) -> None:
    r = await api.client.get(JOBS, headers={"Authorization": "Bearer orch_abc_wrongsecret"})
    assert r.status_code == 401
    events = await api.events(MaxResults=100)
    refused = next(e for e in events if e["statusCode"] == 401)
    assert refused["userIdentity"] is None
    assert refused["errorCode"] == "AuthenticationFailed" or refused["errorCode"]
    assert "wrongsecret" not in json.dumps(events)


async def test_secrets_never_reach_a_record(api: Api) -> None:
    r = await api.client.post(
        "/api/v1/api-keys", json={"Name": "bob", "Role": "invoke"}, headers=api.auth
    )
    assert r.status_code == 201, r.text
    bob_key = r.json()["ApiKey"]
    r = await api.client.post(
        "/api/v1/access-keys", json={"Name": "carol", "Role": "admin"}, headers=api.auth
    )
    assert r.status_code == 201, r.text
    secret_access_key = r.json()["SecretAccessKey"]
    doc = training_doc("job-s")
    doc["Environment"] = {"DB_PASSWORD": "hunter2", "MODE": "fast"}
    doc["HyperParameters"] = {"api_token": "tok-123", "epochs": "3"}
    r = await api.client.post(JOBS, json=doc, headers=api.auth)
    assert r.status_code == 201, r.text
    await api.client.get(JOBS, params={"SessionToken": "sess-xyz"}, headers=api.auth)
    everything = json.dumps(await api.events(MaxResults=1000))
    for secret in (bob_key, bob_key.split("_", 2)[2], secret_access_key, "hunter2", "tok-123"):
        assert secret not in everything
    assert "sess-xyz" not in everything
    assert api.key.split("_", 2)[2] not in everything  # the caller's own bearer secret
    created = await api.last("CreateTrainingJob")
    assert created["requestParameters"]["Environment"] == {"DB_PASSWORD": "***", "MODE": "fast"}
    assert created["requestParameters"]["HyperParameters"]["epochs"] == "3"
    key_created = await api.last("CreateApiKey")
    assert key_created["requestParameters"] == {"Name": "bob", "Role": "invoke"}
    # ... and what is stored is the same: no secret in any record file either.
    api.trail.flush()
    for record_file in api.trail.record_files():
        assert secret_access_key.encode() not in api.trail.read(record_file.key)


async def test_object_bodies_are_never_recorded(api: Api) -> None:
    body = json.dumps({"note": "object-body-marker"}).encode()
    r = await api.client.put(
        "/api/v1/objects/data/x.json",
        content=body,
        headers={**api.auth, "content-type": "application/json"},
    )
    assert r.status_code == 200, r.text
    event = await api.last("PutObject")
    assert event["resources"] == ["arn:aws:s3:::data/x.json"]
    assert "object-body-marker" not in json.dumps(event)


async def test_a_denied_invocation_is_recorded(api: Api) -> None:
    r = await api.client.post(
        "/endpoints/ep-x/invocations",
        content=b"1",
        headers={"Authorization": "Bearer orch_deadbeef0000_nope", "User-Agent": "inv/2"},
    )
    assert r.status_code == 401
    r = await api.client.post(
        "/api/v1/api-keys", json={"Name": "viewer", "Role": "invoke"}, headers=api.auth
    )
    invoke_key = r.json()["ApiKey"]
    ok_events = await api.events(EventName="InvokeEndpoint")
    assert len(ok_events) == 1
    event = ok_events[0]
    assert event["statusCode"] == 401
    assert event["resources"] == ["endpoint/ep-x"]
    assert event["userIdentity"] == {"userName": None, "keyId": "deadbeef0000"}
    assert event["sourceIPAddress"] == "10.1.2.3"
    assert event["userAgent"] == "inv/2"
    assert event["errorCode"]
    # An invoke key may invoke but not manage: its refusal on the API is recorded too.
    r = await api.client.get(JOBS, headers={"Authorization": f"Bearer {invoke_key}"})
    assert r.status_code == 403
    refused = next(e for e in await api.events(Username="viewer") if e["statusCode"] == 403)
    assert refused["errorCode"] == "AccessDeniedException"


async def test_lookup_filters(api: Api) -> None:
    for name in ("job-a", "job-b"):
        await api.client.post(JOBS, json=training_doc(name), headers=api.auth)
    await api.client.get(f"{JOBS}/job-a", headers=api.auth)
    assert {e["eventName"] for e in await api.events(ResourceName="job-a")} == {
        "CreateTrainingJob",
        "DescribeTrainingJob",
    }
    assert len(await api.events(EventName="CreateTrainingJob")) == 2
    assert len(await api.events(Username="alice", EventName="CreateTrainingJob")) == 2
    assert await api.events(Username="nobody") == []
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert await api.events(StartTime=future) == []
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len(await api.events(StartTime=past, EventName="CreateTrainingJob")) == 2
    assert await api.events(EndTime=past) == []
    # Pages, newest first.
    r = await api.client.get(EVENTS, params={"MaxResults": 1}, headers=api.auth)
    page = r.json()
    assert len(page["Events"]) == 1 and "NextToken" in page
    r = await api.client.get(
        EVENTS, params={"MaxResults": 1, "NextToken": page["NextToken"]}, headers=api.auth
    )
    assert r.json()["Events"][0]["seq"] < page["Events"][0]["seq"]


async def test_lookup_bad_input_names_the_field(api: Api) -> None:
    r = await api.client.get(EVENTS, params={"MaxResults": 0}, headers=api.auth)
    assert r.status_code == 400 and "MaxResults" in r.text
    r = await api.client.get(EVENTS, params={"StartTime": "yesterday"}, headers=api.auth)
    assert r.status_code == 400 and "StartTime" in r.text
    r = await api.client.get(EVENTS, params={"NextToken": "x"}, headers=api.auth)
    assert r.status_code == 400 and "NextToken" in r.text


async def test_verify_through_the_api(api: Api) -> None:
    await api.client.get(JOBS, headers=api.auth)
    api.trail.flush(digest=True)
    await api.client.get(JOBS, headers=api.auth)
    r = await api.client.post("/api/v1/audit/verify", headers=api.auth)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["Ok"] is True, report
    assert report["Records"] >= 2 and report["Digests"] >= 1
    r = await api.client.get("/api/v1/audit/public-key", headers=api.auth)
    assert r.json()["PublicKey"].startswith("-----BEGIN PUBLIC KEY-----")


async def test_audit_routes_are_admin_only(api: Api) -> None:
    r = await api.client.post(
        "/api/v1/api-keys", json={"Name": "inv", "Role": "invoke"}, headers=api.auth
    )
    invoker = {"Authorization": f"Bearer {r.json()['ApiKey']}"}
    assert (await api.client.get(EVENTS, headers=invoker)).status_code == 403
    assert (await api.client.post("/api/v1/audit/verify", headers=invoker)).status_code == 403


async def test_the_trail_bucket_cannot_be_written(api: Api) -> None:
    bucket = api.plane.settings.audit.bucket
    r = await api.client.put(
        f"/api/v1/objects/{bucket}/records/x.jsonl", content=b"{}", headers=api.auth
    )
    assert r.status_code == 403
    assert "audit trail" in r.json()["message"]
    r = await api.client.delete(
        f"/api/v1/objects/{bucket}/digests/main/00000001.json", headers=api.auth
    )
    assert r.status_code == 403


async def test_the_trail_can_be_off(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        audit=AuditSettings(enabled=False),
    )
    plane = build_control_plane(settings, backend=FakeBackend())
    key = new_api_key(plane.store, name="a", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o") as c,
    ):
        r = await c.get(EVENTS, headers={"Authorization": f"Bearer {key}"})
    plane.store.close()
    assert r.status_code == 409
    assert "ORCH_AUDIT__ENABLED" in r.text


async def test_the_authorized_action_and_resource_are_recorded(tmp_path: Path) -> None:
    """What authorization names (``request.state.authorized``) is what the record says."""
    from orchestrator.access import Principal
    from orchestrator.api.auditing import AuditMiddleware
    from orchestrator.audit import LookupFilter, SigningKey
    from orchestrator.objects import LocalKeyring, open_object_store

    store = open_object_store((tmp_path / "o").as_uri(), LocalKeyring(tmp_path / "k.json"))
    trail = AuditTrail(store, SigningKey.load_or_create(tmp_path / "s.key"), bucket="audit")
    arn = "arn:aws:sagemaker:us-east-1:000000000000:training-job/job-9"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["state"]["principal"] = Principal("k9", "dana", "admin")
        scope["state"]["authorized"] = ("sagemaker:DescribeTrainingJob", arn)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=AuditMiddleware(app, trail)), base_url="http://o"
    )
    async with client:
        r = await client.get(f"{JOBS}/job-9")
    [event] = trail.lookup(LookupFilter(resource_name="job-9"))[0]
    assert event["eventName"] == "DescribeTrainingJob"
    assert event["resources"] == [arn]
    assert event["userIdentity"] == {"userName": "dana", "keyId": "k9"}
    assert event["requestID"] == r.headers["x-request-id"]
