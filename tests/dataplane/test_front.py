"""The data plane's front, served as the control plane serves it, to a fake replica:
refusals before the body is read, status answers, pass-through of what the replica says,
and metrics counted exactly once per request."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dataplane_harness import fake_replica_app

from orchestrator import metrics
from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute
from orchestrator.dataplane import DataPlaneFront
from orchestrator.settings import ServingSettings, Settings
from orchestrator.testing import ServerThread

LIMIT = 64 * 1024


@dataclass
class Env:
    url: str
    front: DataPlaneFront
    plane: ControlPlane
    key: str
    replica: str
    http: httpx.Client

    def route(self, *, public: bool = False, url: str | None = None) -> None:
        variant = VariantRoute("main", 1.0, (url or self.replica,), config="cfg")
        self.plane.controller.routes.publish(EndpointRoute("ep", public, (variant,)))

    def post(self, path: str = "/endpoints/ep/invocations", body: bytes = b"[1]", **headers: str):  # type: ignore[no-untyped-def]
        return self.http.post(f"{self.url}{path}", content=body, headers=headers)

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        serving=ServingSettings(max_payload_bytes=LIMIT, invocation_timeout_seconds=0.5),
    )
    plane = build_control_plane(settings, backend=FakeBackend())
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(UTC))
    front = create_app(plane, run_controller=False)
    with (
        ServerThread(fake_replica_app) as replica,
        ServerThread(front) as server,
        httpx.Client(timeout=10, trust_env=False) as http,
    ):
        yield Env(server.url, front, plane, key, replica.url, http)
    plane.store.close()


def raw_request(url: str, head: bytes) -> bytes:
    """Send only a request head (no body) and read the answer the server gives anyway."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_401_comes_before_the_body_is_read(env: Env) -> None:
    env.route()
    head = b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n"
    assert raw_request(env.url, head).startswith(b"HTTP/1.1 401")


def test_413_comes_before_the_body_is_read_and_names_the_limit(env: Env) -> None:
    env.route(public=True)
    head = (
        b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\n"
        + f"content-length: {LIMIT + 1}\r\n\r\n".encode()
    )
    answer = raw_request(env.url, head)
    assert answer.startswith(b"HTTP/1.1 413")
    r = env.post(body=b"x" * (LIMIT + 1))
    assert (r.status_code, r.json()["field"]) == (413, "Content-Length")
    assert f"{LIMIT}-byte limit" in r.json()["message"]
    # Chunked, no Content-Length: refused as soon as it passes the limit.
    r = env.http.post(
        f"{env.url}/endpoints/ep/invocations", content=iter([b"x" * 40_000, b"y" * 40_000])
    )
    assert (r.status_code, r.json()["field"]) == (413, "body")


def test_a_bad_content_length_names_the_header(env: Env) -> None:
    env.route(public=True)
    head = b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: 12x\r\n\r\n"
    assert raw_request(env.url, head).split(b"\r\n")[0] in {b"HTTP/1.1 400 Bad Request"}


def test_without_a_route_the_status_answers(env: Env) -> None:
    r = env.post(**env.auth())
    assert (r.status_code, r.json()["code"]) == (404, "ResourceNotFound")
    env.front.plane.endpoint_status = lambda name: ("Creating", "")
    r = env.post(**env.auth())
    assert (r.status_code, r.headers["retry-after"]) == (503, "1")
    assert "is Creating, not in service yet" in r.json()["message"]
    env.front.plane.endpoint_status = lambda name: ("Failed", "the model did not load")
    r = env.post(**env.auth())
    assert r.status_code == 409 and "the model did not load" in r.json()["message"]
    # Without a key, the same 401 whether or not the endpoint exists.
    assert env.post().status_code == 401


def test_answers_pass_through_with_their_variant_and_retry_after(env: Env) -> None:
    env.route()
    r = env.post(body=b"12345", **env.auth(), **{"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json() == {"n": 5, "path": "/invocations"}
    assert r.headers["x-invoked-production-variant"] == "main"
    r = env.post(**env.auth(), **{"X-Custom-Attributes": "status=429"})
    assert (r.status_code, r.headers["retry-after"]) == (429, "3")
    r = env.post("/endpoints/ep/v2/models/my%20model/infer", **env.auth())
    assert r.json()["path"] == "/v2/models/my model/infer"


def test_a_replica_slower_than_the_deadline_is_504(env: Env) -> None:
    env.route()
    r = env.post(**env.auth(), **{"X-Custom-Attributes": "sleep=2"})
    assert (r.status_code, r.json()["code"]) == (504, "DeadlineExceeded")


def test_get_is_405_and_other_paths_reach_the_management_api(env: Env) -> None:
    r = env.http.get(f"{env.url}/endpoints/ep/invocations")
    assert (r.status_code, r.headers["allow"]) == (405, "POST")
    assert env.http.get(f"{env.url}/healthz").json()["status"] == "ok"
    assert env.http.get(f"{env.url}/api/v1/endpoints").status_code == 401


def test_a_public_endpoint_ignores_a_bad_key_and_an_invoke_key_may_invoke(env: Env) -> None:
    env.route(public=True)
    assert env.post(Authorization="Bearer orch_nope_nope").status_code == 200
    env.route()
    invoker = new_api_key(env.plane.store, name="i", role="invoke", now=datetime.now(UTC))
    assert env.post(Authorization=f"Bearer {invoker}").status_code == 200


def test_a_revoked_key_stops_working_at_once(env: Env) -> None:
    env.route()
    invoker = new_api_key(env.plane.store, name="i", role="invoke", now=datetime.now(UTC))
    assert env.post(**{"X-Api-Key": invoker}).status_code == 200  # now cached
    key_id = invoker.split("_")[1]
    r = env.http.delete(f"{env.url}/api/v1/api-keys/{key_id}", headers=env.auth())
    assert r.status_code == 200 and r.json()["Revoked"] is True
    assert env.post(**{"X-Api-Key": invoker}).status_code == 401


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_request_is_counted_exactly_once(env: Env) -> None:
    env.route()
    labels = {"endpoint": "ep", "variant": "main"}
    before = {
        "n": sample("orch_invocations_total", **labels),
        "5xx": sample("orch_invocation_errors_total", **labels, error_class="5XX"),
        "4xx": sample("orch_invocation_errors_total", **labels, error_class="4XX"),
        "overhead": sample("orch_overhead_latency_seconds_count", **labels),
        "worker": sample("orch_router_worker_invocations_total", worker="0"),
    }
    statuses = [200] * 20 + [500] * 3 + [429] * 2
    for status in statuses:
        assert (
            env.post(**env.auth(), **{"X-Custom-Attributes": f"status={status}"}).status_code
            == status
        )
    series = env.plane.series
    assert series is not None

    def stat(metric: str, statistic: str = "Sum") -> float:
        end = datetime.now(UTC) + timedelta(seconds=5)
        got = series.query(
            "ep", metric, start=end - timedelta(minutes=5), end=end, period=600,
            statistics=[statistic],
        )  # fmt: skip
        return sum(getattr(p, statistic) or 0 for p in got.Datapoints)

    deadline = time.monotonic() + 5
    while stat("Invocations") < len(statuses) and time.monotonic() < deadline:
        time.sleep(0.05)  # the data plane flushes every 50 ms
    time.sleep(0.2)  # and nothing more arrives later
    assert stat("Invocations") == len(statuses)
    assert (stat("Invocation5XXErrors"), stat("Invocation4XXErrors")) == (3, 2)
    assert stat("OverheadLatency", "SampleCount") == len(statuses)
    # ModelLatency as SageMaker's: the replica's time as the router sees it (the fake replica
    # takes well under a second); OverheadLatency the rest, per request.
    assert stat("ModelLatency", "SampleCount") == len(statuses)
    assert 0 < stat("ModelLatency", "Maximum") < 1e6
    assert sample("orch_invocations_total", **labels) - before["n"] == len(statuses)
    assert sample("orch_invocation_errors_total", **labels, error_class="5XX") - before["5xx"] == 3
    assert sample("orch_invocation_errors_total", **labels, error_class="4XX") - before["4xx"] == 2
    assert sample("orch_overhead_latency_seconds_count", **labels) - before["overhead"] == len(
        statuses
    )
    assert sample("orch_router_worker_invocations_total", worker="0") - before["worker"] == len(
        statuses
    )
    assert sample("orch_concurrent_requests", **labels) == 0


def test_the_answer_body_is_the_replicas_bytes(env: Env) -> None:
    env.route()
    body = json.dumps({"rows": list(range(5000))}).encode()
    assert env.post(body=body, **env.auth()).json()["n"] == len(body)


def exchange(url: str, data: bytes, answers: int) -> list[bytes]:
    """Send ``data`` as is on one connection; read ``answers`` whole answers back."""
    host, port = url.removeprefix("http://").split(":")
    out: list[bytes] = []
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(data)
        buffer = b""
        while len(out) < answers:
            while b"\r\n\r\n" not in buffer:
                buffer += s.recv(65536)
            head, _, buffer = buffer.partition(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            while len(buffer) < length:
                buffer += s.recv(65536)
            out.append(head + b"\r\n\r\n" + buffer[:length])
            buffer = buffer[length:]
    return out


def test_pipelined_requests_are_answered_in_order(env: Env) -> None:
    env.route(public=True)
    invoke = b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\n"
    health = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    got = exchange(env.url, invoke + b"abc" + health + invoke + b"abcdef"[:3], 3)
    assert [a.split(b"\r\n")[0] for a in got] == [b"HTTP/1.1 200 OK"] * 3
    assert b'"n": 3' in got[0] and b'"status":"ok"' in got[1] and b'"n": 3' in got[2]


def test_expect_100_continue_is_answered_before_the_body(env: Env) -> None:
    env.route(public=True)
    host, port = env.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(
            b"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n"
            b"expect: 100-continue\r\n\r\n"
        )
        assert s.recv(65536).startswith(b"HTTP/1.1 100 Continue")
        s.sendall(b"[12]")
        assert s.recv(65536).startswith(b"HTTP/1.1 200")
