"""Tenancy on the invocation data plane: a keyed caller of another account gets exactly an
absent endpoint's answer (status, headers, body with the name put in), on the product's wire,
on SageMaker Runtime's and through a router worker; the endpoint's own account is served; a
public endpoint serves anyone; the refusal is audited with the caller's account; the route's
account crosses the worker wire; the Prometheus scrape is the server's own account's.

Principals with accounts come in through the data plane's key seams (``key_checker`` and
``signing_key_source``), as an identity of that account would be resolved."""

from __future__ import annotations

import contextlib
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from dataplane_harness import fake_replica_app

from orchestrator import sigv4, tenancy
from orchestrator.access import Principal
from orchestrator.api import auditing
from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.audit.record import Call, to_record
from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute
from orchestrator.dataplane import DataPlaneFront, http_protocol, wire
from orchestrator.iam import parse_policy, policy_set
from orchestrator.settings import ServerSettings, Settings
from orchestrator.store.source import Record
from orchestrator.testing import ServerThread

A = "111111111111"
B = "222222222222"
SERVER = "000000000000"  # Settings' default account_id: the server's own account (ROOT)
KEY_A, KEY_B, KEY_B_NONE = "orch_keya_s1", "orch_keyb_s2", "orch_keyb0_s3"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
AKID_A, AKID_B = "AKIATENANTA000000000", "AKIATENANTB000000000"
VOLATILE = {b"date", b"x-amzn-requestid"}  # differ between any two answers


def _invoker(key_id: str, account: str, resource: str = "*") -> Principal:
    """A principal of ``account`` allowed InvokeEndpoint on ``resource`` (an ARN pattern)."""
    document = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint", "Resource": resource}
            ],
        }
    )
    policies = policy_set([parse_policy(document, name="invoke")], key_id)
    return Principal(key_id, f"user-{key_id}", "", policies, account=account)


PRINCIPALS = {
    KEY_A: _invoker("keya", A, f"arn:aws:sagemaker:us-east-1:{A}:endpoint/*"),
    KEY_B: _invoker("keyb", B, f"arn:aws:sagemaker:us-east-1:{B}:endpoint/*"),
    # Of B, allowed nothing: refused (403) before any endpoint is looked at.
    KEY_B_NONE: _invoker("keyb0", B, f"arn:aws:sagemaker:us-east-1:{B}:endpoint/only-this"),
}
SIGNERS = {AKID_A: PRINCIPALS[KEY_A], AKID_B: PRINCIPALS[KEY_B]}


@dataclass
class Env:
    url: str
    front: DataPlaneFront
    plane: ControlPlane
    replica: str
    http: httpx.Client
    denied: list[dict[str, Any]] = field(default_factory=list)

    def route(self, name: str = "ep", *, account: str = A, public: bool = False) -> None:
        variant = VariantRoute("main", 1.0, (self.replica,), config="cfg")
        self.plane.routes.publish(EndpointRoute(name, public, (variant,), account=account))

    def post(
        self, name: str = "ep", *, key: str | None = None, path: str = "invocations"
    ) -> Answer:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return raw_post(self.url, f"/endpoints/{name}/{path}", headers)


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as it was sent: the status, the headers in order, the body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: bytes) -> bytes:
        return dict(self.headers)[name]


def raw_post(url: str, path: str, headers: dict[str, str], body: bytes = b"[1]") -> Answer:
    """POST ``body`` to ``path``, the head and the body in one write (so that no server
    answers before the body is there, which closes the connection), and read the answer
    exactly as it is sent."""
    host, port = url.removeprefix("http://").split(":")
    head = [f"POST {path} HTTP/1.1", f"host: {host}:{port}", f"content-length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in {"content-length"}]
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, "the server closed the connection without an answer"
            data += chunk
        top, _, rest = data.partition(b"\r\n\r\n")
        lines = top.split(b"\r\n")
        out = [(k.strip().lower(), v.strip()) for k, _, v in (h.partition(b":") for h in lines[1:])]
        length = int(dict(out)[b"content-length"])
        while len(rest) < length:
            chunk = s.recv(65536)
            assert chunk, "the server closed the connection mid-answer"
            rest += chunk
    return Answer(int(lines[0].split()[1]), out, rest[:length])


def _seams(front: DataPlaneFront) -> list[dict[str, Any]]:
    """Put the test's principals behind the data plane's key seams; the refusals told to the
    audit hook are collected in the list returned."""
    plane = front.plane
    checker, source = plane.key_checker, plane.signing_key_source

    def check(presented: str | None) -> Principal:
        if presented in PRINCIPALS:
            return PRINCIPALS[presented]
        return checker(presented)

    def signing_key(akid: str, date: str, region: str, service: str) -> tuple[bytes, Principal]:
        if akid in SIGNERS:
            return sigv4.signing_key(SECRET, date, region, service), SIGNERS[akid]
        return source(akid, date, region, service)

    plane.key_checker = check
    plane.signing_key_source = signing_key
    denied: list[dict[str, Any]] = []

    def on_denied(
        name: str,
        headers: list[tuple[bytes, bytes]],
        status: int,
        body: bytes,
        client: str,
        *,
        account: str = "",
    ) -> None:
        denied.append({"endpoint": name, "status": status, "body": body, "account": account})

    plane.on_denied = on_denied
    return denied


def _settings(root: Path, *, fast_path: bool = True) -> Settings:
    return Settings(
        home=root / "home",
        config_dir=root / "config",
        backend="fake",
        server=ServerSettings(invocation_fast_path=fast_path),
    )


@pytest.fixture(params=["fastpath", "asgi"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    plane = build_control_plane(_settings(tmp_path), backend=FakeBackend())
    front = create_app(plane, run_controller=False)
    denied = _seams(front)

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        await front(scope, receive, send)

    served: Any = front if request.param == "fastpath" else asgi
    with (
        ServerThread(fake_replica_app) as replica,
        ServerThread(served) as server,
        httpx.Client(timeout=10, trust_env=False) as http,
    ):
        yield Env(server.url, front, plane, replica.url, http, denied)
    plane.store.close()


def _same_answer(other: Answer, absent: Answer, name: str, absent_name: str) -> None:
    """``other`` is ``absent`` (an answer about ``absent_name``) with ``name`` put in: the
    status, every header (but the date and a request id) in order, and the body."""
    assert other.status == absent.status
    body = absent.body.replace(absent_name.encode(), name.encode())
    assert other.body == body
    assert [(k, v) for k, v in other.headers if k not in VOLATILE] == [
        (k, str(len(body)).encode() if k == b"content-length" else v)
        for k, v in absent.headers
        if k not in VOLATILE
    ]


# --- the product's wire ---------------------------------------------------------------------
def test_another_accounts_endpoint_answers_as_an_absent_one(env: Env) -> None:
    env.route("ep", account=A)
    elsewhere = env.post("ep", key=KEY_B)
    absent = env.post("nope", key=KEY_B)
    assert (elsewhere.status, elsewhere.json()["code"]) == (404, "ResourceNotFound")
    _same_answer(elsewhere, absent, "ep", "nope")
    # The same name, once the route is gone: byte for byte the same answer.
    v2 = env.post("ep", key=KEY_B, path="v2/models/m/infer")
    env.plane.routes.withdraw("ep")
    _same_answer(elsewhere, env.post("ep", key=KEY_B), "ep", "ep")
    _same_answer(v2, env.post("ep", key=KEY_B, path="v2/models/m/infer"), "ep", "ep")


def test_the_endpoints_own_account_is_served(env: Env) -> None:
    env.route("ep", account=A)
    r = env.post("ep", key=KEY_A)
    assert r.status == 200 and r.json() == {"n": 3, "path": "/invocations"}
    assert env.post("ep", key=KEY_A, path="v2/models/m/infer").status == 200
    # Authorized on the endpoint's ARN in its own account: A's policy names only A's ARNs.
    env.route("ep", account=B)
    assert env.post("ep", key=KEY_B).status == 200
    assert env.post("ep", key=KEY_A).status == 404


def test_the_servers_own_account_does_not_reach_a_tenants_endpoint(env: Env) -> None:
    admin = new_api_key(env.plane.store, name="root", role="admin", now=datetime.now(UTC))
    env.route("ep", account=A)
    _same_answer(env.post("ep", key=admin), env.post("nope", key=admin), "ep", "nope")
    env.route("mine", account=tenancy.ROOT)
    assert env.post("mine", key=admin).status == 200
    assert env.post("mine", key=KEY_A).status == 404


def test_a_public_endpoint_serves_anyone(env: Env) -> None:
    env.route("pub", account=A, public=True)
    for key in (None, KEY_A, KEY_B, KEY_B_NONE, "orch_bad_key"):
        r = env.post("pub", key=key)
        assert r.status == 200, (key, r.body)
    assert env.denied == []


def test_a_caller_refused_the_action_is_refused_alike_either_way(env: Env) -> None:
    # 403 on an ARN in the caller's own account, whether the endpoint is A's or absent.
    env.route("ep", account=A)
    elsewhere, absent = env.post("ep", key=KEY_B_NONE), env.post("nope", key=KEY_B_NONE)
    assert elsewhere.status == 403
    assert f":{B}:endpoint/ep" in elsewhere.json()["message"]
    _same_answer(elsewhere, absent, "ep", "nope")
    # Without a key: the same 401 as ever.
    _same_answer(env.post("ep"), env.post("nope"), "ep", "nope")


def test_a_status_of_another_accounts_endpoint_is_never_told(env: Env) -> None:
    # A's endpoint has no route yet (Creating): B is answered 404, not 503.
    seen: list[str | None] = []

    def status(name: str) -> tuple[str, str] | None:
        seen.append(tenancy.current())
        return ("Creating", "") if tenancy.visible(A) else None

    env.front.plane.endpoint_status = status
    assert env.post("ep", key=KEY_A).status == 503
    _same_answer(env.post("ep", key=KEY_B), env.post("nope", key=KEY_B), "ep", "nope")
    assert seen == [A, B, B]  # asked as the caller's account


def test_the_control_planes_status_lookup_hides_another_accounts_endpoint(env: Env) -> None:
    now = datetime.now(UTC)
    record = Record("Endpoint", "ep", "u1", {}, {}, "Creating", True, False, False, now, now, "1")
    env.plane.store.find = lambda kind, name: replace_account(record, A)  # type: ignore[method-assign]
    with tenancy.acting_as(A):
        assert env.plane.endpoint_status("ep") == ("Creating", "")
    with tenancy.acting_as(B):
        assert env.plane.endpoint_status("ep") is None
    assert env.plane.endpoint_status("ep") == ("Creating", "")  # the system sees all


def replace_account(record: Record, account: str) -> Record:
    from dataclasses import replace

    return replace(record, account=account)


def test_the_refusal_is_audited_with_the_callers_account(env: Env) -> None:
    env.route("ep", account=A)
    env.post("ep", key=KEY_B)
    env.post("ep", key=KEY_A)  # served: not a refusal
    env.plane.routes.withdraw("ep")
    env.post("ep", key=KEY_B)
    env.post("ep")  # no key: 401, no account
    first, second, unkeyed = env.denied
    assert first == second
    assert (first["endpoint"], first["status"], first["account"]) == ("ep", 404, B)
    assert (unkeyed["status"], unkeyed["account"]) == (401, "")


def test_the_audit_record_names_the_callers_account() -> None:
    calls: list[Call] = []

    class Trail:
        def submit(self, call: Call) -> None:
            calls.append(call)

    record = auditing.denied_recorder(Trail())  # type: ignore[arg-type]
    headers = [(b"authorization", b"Bearer orch_keyb_s2")]
    record("ep", headers, 404, b'{"code":"ResourceNotFound"}', "10.0.0.1", account=B)
    record("ep", [], 401, b'{"code":"AuthenticationFailed"}', "10.0.0.1")
    keyed, unkeyed = (to_record(c) for c in calls)
    assert keyed["userIdentity"] == {"userName": None, "keyId": "keyb", "accountId": B}
    assert (keyed["statusCode"], keyed["errorCode"]) == (404, "ResourceNotFound")
    assert unkeyed["userIdentity"] is None


def test_the_prometheus_scrape_is_the_servers_own_accounts(env: Env) -> None:
    admin = new_api_key(env.plane.store, name="root", role="admin", now=datetime.now(UTC))
    tenant_admin = "orch_tenantadmin_s4"
    env.front.plane.keys.put(tenant_admin, Principal("tenantadmin", "t", "admin", account=B))
    assert env.http.get(
        f"{env.url}/metrics", headers={"Authorization": f"Bearer {admin}"}
    ).is_success
    r = env.http.get(f"{env.url}/metrics", headers={"Authorization": f"Bearer {tenant_admin}"})
    assert r.status_code == 403 and "server's own account" in r.json()["message"]
    assert "orch_invocations_total" not in r.text


# --- SageMaker Runtime's wire (SigV4) -------------------------------------------------------
def _signed(url: str, path: str, akid: str, **extra: str) -> dict[str, str]:
    botocore = pytest.importorskip("botocore", reason="botocore is in the [dev] extra")
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    del botocore
    request = AWSRequest(
        method="POST", url=url + path, data=b"[1]",
        headers={"Content-Type": "application/json", **extra},
    )  # fmt: skip
    SigV4Auth(Credentials(akid, SECRET), "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def _invoke_signed(env: Env, name: str, akid: str, **extra: str) -> Answer:
    path = f"/endpoints/{name}/invocations"
    return raw_post(env.url, path, _signed(env.url, path, akid, **extra))


def test_sagemaker_runtime_answers_another_accounts_endpoint_as_an_absent_one(env: Env) -> None:
    env.route("ep", account=A)
    served = _invoke_signed(env, "ep", AKID_A)
    assert served.status == 200, served.body
    elsewhere, absent = _invoke_signed(env, "ep", AKID_B), _invoke_signed(env, "nope", AKID_B)
    assert (elsewhere.status, elsewhere.header(b"x-amzn-errortype")) == (400, b"ValidationError")
    # Named in the caller's account, as SageMaker names an endpoint that is not there.
    assert elsewhere.json()["message"] == f"Endpoint ep of account {B} not found."
    _same_answer(elsewhere, absent, "ep", "nope")
    assert [d["account"] for d in env.denied] == [B, B]
    # A replica's error names the endpoint's own account (its log group is there).
    r = _invoke_signed(env, "ep", AKID_A, **{"X-Custom-Attributes": "status=500"})
    assert (r.status, r.header(b"x-amzn-errortype")) == (424, b"ModelError")
    assert r.json()["LogStreamArn"].startswith(f"arn:aws:logs:us-east-1:{A}:log-group:")


def test_sagemaker_runtime_public_endpoint_serves_another_accounts_signer(env: Env) -> None:
    env.route("pub", account=A, public=True)
    assert _invoke_signed(env, "pub", AKID_B).status == 200


# --- the router worker's wire ---------------------------------------------------------------
def test_the_routes_account_crosses_the_worker_wire() -> None:
    variant = VariantRoute("main", 1.0, ("http://10.0.0.1:8080",), config="cfg")
    routes = [
        EndpointRoute("ep", False, (variant,), (("team", "x"),), account=A),
        EndpointRoute("mine", True, (variant,)),
    ]
    line = wire.encode({"t": "routes", "routes": wire.routes_to_wire(routes)})
    assert wire.routes_from_wire(orjson.loads(line)["routes"]) == routes
    # A route from a hub that sent no account is the server's own.
    legacy = orjson.loads(line)["routes"]
    del legacy[0]["account"]
    assert wire.routes_from_wire(legacy)[0].account == tenancy.ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _serving_unix(front: DataPlaneFront, path: Path) -> Iterator[None]:
    """``front`` on the private Unix socket the worker passes requests to (as ``orch
    server`` serves it: the same app; its lifespan is the TCP server's)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    config = uvicorn.Config(
        front, http=http_protocol(front), lifespan="off", log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[Env]:
    """A router worker process on a port of its own, fed by this control plane's hub: an
    invocation of an endpoint it has a route for is answered by the worker, one it has none
    for is passed to the control plane."""
    from orchestrator.dataplane.workers import RouterWorkers

    plane = build_control_plane(_settings(tmp_path), backend=FakeBackend())
    front = create_app(plane, run_controller=False)
    denied = _seams(front)
    port = _free_port()
    hub = RouterWorkers(
        front.plane, count=1, host="127.0.0.1", port=port,
        run_dir=Path(tempfile.mkdtemp(prefix="orch-t-")), series=plane.series, clock=time.time,
    )  # fmt: skip
    front.plane.started_hooks.append(hub.start)
    front.plane.stopping_hooks.append(hub.stop)
    with (
        ServerThread(fake_replica_app) as replica,
        ServerThread(front),
        _serving_unix(front, hub.api_path),
        httpx.Client(timeout=10, trust_env=False) as http,
    ):
        env = Env(f"http://127.0.0.1:{port}", front, plane, replica.url, http, denied)
        env.route("ep", account=A)
        deadline = time.monotonic() + 30
        while True:  # until the worker listens and has the route
            try:
                if env.post("ep", key=KEY_A).status == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the router worker did not start"
            time.sleep(0.1)
        yield env
    plane.store.close()


def test_a_router_worker_answers_another_accounts_endpoint_as_an_absent_one(worker: Env) -> None:
    # ``ep`` is routed in the worker (A's); ``nope`` is not, so the control plane answers it.
    elsewhere, absent = worker.post("ep", key=KEY_B), worker.post("nope", key=KEY_B)
    assert elsewhere.status == 404
    _same_answer(elsewhere, absent, "ep", "nope")
    assert worker.post("ep", key=KEY_A).status == 200
    deadline = time.monotonic() + 5
    while len(worker.denied) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # the worker's refusal reaches the hub over its socket
    assert sorted((d["endpoint"], d["status"], d["account"]) for d in worker.denied) == [
        ("ep", 404, B),
        ("nope", 404, B),
    ]
