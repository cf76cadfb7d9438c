"""boto3's ``sagemaker-runtime`` ``invoke_endpoint`` on the invocation data plane, with SigV4.

A control plane on the fake backend serves the data plane's front (through uvicorn's protocol,
the fast path, and through the plain ASGI front), with a route to a stand-in SageMaker
container (``container_app``: it echoes what it was sent and obeys the custom attributes it
gets); a router worker process serves the same requests through the hub's keys. What boto3
sends verifies; each tampered part does not, with AWS's codes; the answers and the errors are
SageMaker Runtime's shapes; bearer callers keep the product's.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest

from orchestrator import metrics
from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute
from orchestrator.dataplane import DataPlaneFront, runtime
from orchestrator.dataplane.pool import ReplicaAnswer
from orchestrator.settings import ServerSettings, ServingSettings, Settings
from orchestrator.testing import ServerThread

boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra: pip install -e '.[dev]'")
from botocore import UNSIGNED  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from botocore.response import StreamingBody  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "000000000000"
SIX_MB = 6 * 1024 * 1024
TIMEOUT = 0.5  # the invocation deadline of these tests' control plane


async def container_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A stand-in SageMaker container: answers what it was sent (path, content type, accept,
    body, the custom attributes and inference id it got) as JSON, or as CSV when asked; obeys
    ``CustomAttributes`` such as ``status=500;say=boom`` (that status, ``boom`` as its body)
    and ``sleep=2``; hands back ``X-Amzn-SageMaker-Custom-Attributes: handled;<what it got>``."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    got = {k.decode(): v.decode() for k, v in scope["headers"]}
    attributes = got.get("x-amzn-sagemaker-custom-attributes")
    options = dict(kv.split("=", 1) for kv in (attributes or "").split(";") if "=" in kv)
    if "sleep" in options:
        await asyncio.sleep(float(options["sleep"]))
    status = int(options.get("status", "200"))
    headers = []
    if status != 200:
        payload, content_type = options.get("say", "model failed").encode(), "text/plain"
    elif got.get("accept") == "text/csv":
        rows = [line for line in body.decode().splitlines() if line]
        payload, content_type = f"rows,{len(rows)}\n".encode(), "text/csv"
    else:
        seen = {
            "path": scope["path"],
            "content_type": got.get("content-type"),
            "accept": got.get("accept"),
            "body": body.decode(),
            "custom_attributes": attributes,
            "inference_id": got.get("x-amzn-sagemaker-inference-id"),
            "forwarded": sorted(k for k in got if k.startswith(("x-amz", "authorization"))),
        }
        payload, content_type = json.dumps(seen).encode(), "application/json"
    if attributes is not None:
        headers.append((b"x-amzn-sagemaker-custom-attributes", f"handled;{attributes}".encode()))
    headers += [
        (b"content-type", content_type.encode()),
        (b"content-length", str(len(payload)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _read_body(parsed: dict[str, Any], **_kwargs: Any) -> None:
    """Read an answer's streamed body at once, so its connection goes back to the pool (and is
    closed with the client) whether or not the test reads it."""
    if "Body" in parsed:
        data = parsed["Body"].read()
        parsed["Body"] = StreamingBody(io.BytesIO(data), len(data))


def asgi_only(front: DataPlaneFront) -> Any:
    """``front`` as a plain ASGI app: served through the ASGI front, not the fast path."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await front(scope, receive, send)

    return app


@dataclass
class Runtime:
    url: str
    front: DataPlaneFront
    plane: ControlPlane
    access_key_id: str
    secret: str
    replica: str
    api_key: str
    clients: list[Any] = field(default_factory=list)  # closed at teardown (their sockets)

    def route(self, *variants: VariantRoute, name: str = "ep", public: bool = False) -> None:
        variants = variants or (VariantRoute("main", 1.0, (self.replica,), config="cfg"),)
        self.plane.routes.publish(EndpointRoute(name, public, variants))

    def client(self, **overrides: Any) -> Any:
        kwargs: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret,
            "config": Config(retries={"max_attempts": 1}),
        }
        kwargs.update(overrides)
        client = boto3.client("sagemaker-runtime", **kwargs)
        client.meta.events.register("after-call.sagemaker-runtime.InvokeEndpoint", _read_body)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def signed_headers(
        self,
        body: bytes,
        *,
        path: str = "/endpoints/ep/invocations",
        secret: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """The headers botocore's own signer adds for POSTing ``body`` to ``path``."""
        request = AWSRequest(
            method="POST", url=self.url + path, data=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        creds = Credentials(self.access_key_id, secret or self.secret)
        SigV4Auth(creds, "sagemaker", REGION).add_auth(request)
        return dict(request.headers.items())

    def post(self, body: bytes, headers: dict[str, str], path: str = "/endpoints/ep/invocations"):  # type: ignore[no-untyped-def]
        return httpx.post(self.url + path, content=body, headers=headers, trust_env=False)


def _settings(root: Path, *, fast_path: bool = True) -> Settings:
    return Settings(
        home=root / "home",
        config_dir=root / "config",
        backend="fake",
        serving=ServingSettings(invocation_timeout_seconds=TIMEOUT),
        server=ServerSettings(invocation_fast_path=fast_path),
    )


@pytest.fixture(params=["fastpath", "asgi"])
def rt(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    plane = build_control_plane(_settings(tmp_path), backend=FakeBackend())
    record, secret = plane.access_keys.create(name="app", role="invoke", now=datetime.now(UTC))
    api_key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(UTC))
    front = create_app(plane, run_controller=False)
    served = front if request.param == "fastpath" else asgi_only(front)
    with ServerThread(container_app) as replica, ServerThread(served) as server:
        rt = Runtime(server.url, front, plane, record.access_key_id, secret, replica.url, api_key)
        yield rt
        rt.close()
    plane.store.close()


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def _status(e: pytest.ExceptionInfo[ClientError]) -> int:
    return int(e.value.response["ResponseMetadata"]["HTTPStatusCode"])


# --- what boto3 sends, answered ----------------------------------------------------------------
def test_invoke_endpoint_with_a_json_body(rt: Runtime) -> None:
    rt.route()
    out = rt.client().invoke_endpoint(
        EndpointName="ep", Body=b'{"instances": [[1, 2]]}', ContentType="application/json",
        Accept="application/json",
    )  # fmt: skip
    seen = json.loads(out["Body"].read())
    assert seen["path"] == "/invocations" and seen["body"] == '{"instances": [[1, 2]]}'
    assert (seen["content_type"], seen["accept"]) == ("application/json", "application/json")
    # The signature, the date and SageMaker's own headers stay here: the container gets none.
    assert seen["forwarded"] == []
    assert out["ContentType"] == "application/json"
    assert out["InvokedProductionVariant"] == "main"
    assert out["ResponseMetadata"]["RequestId"]
    assert "CustomAttributes" not in out  # the container sent none back


def test_invoke_endpoint_with_a_csv_body(rt: Runtime) -> None:
    rt.route()
    out = rt.client().invoke_endpoint(
        EndpointName="ep", Body="1,2,3\n4,5,6\n", ContentType="text/csv", Accept="text/csv"
    )
    assert (out["Body"].read(), out["ContentType"]) == (b"rows,2\n", "text/csv")


def test_target_variant_picks_the_variant(rt: Runtime) -> None:
    rt.route(
        VariantRoute("a", 1.0, (rt.replica,), config="cfg"),
        VariantRoute("b", 1.0, (rt.replica,), config="cfg"),
    )
    client = rt.client()
    served = {
        client.invoke_endpoint(EndpointName="ep", Body=b"[1]", TargetVariant="b")[
            "InvokedProductionVariant"
        ]
        for _ in range(12)
    }
    assert served == {"b"}
    with pytest.raises(ClientError) as e:
        client.invoke_endpoint(EndpointName="ep", Body=b"[1]", TargetVariant="zz")
    assert (_code(e), _status(e)) == ("ValidationError", 400)
    assert "no production variant 'zz'" in e.value.response["Error"]["Message"]


def test_custom_attributes_round_trip_and_the_inference_id_is_passed_on(rt: Runtime) -> None:
    rt.route()
    out = rt.client().invoke_endpoint(
        EndpointName="ep", Body=b"[1]", CustomAttributes="trace=abc-123", InferenceId="inf-7"
    )
    seen = json.loads(out["Body"].read())
    assert (seen["custom_attributes"], seen["inference_id"]) == ("trace=abc-123", "inf-7")
    assert out["CustomAttributes"] == "handled;trace=abc-123"  # the container's, handed back


@pytest.mark.parametrize(
    ("member", "value", "header"),
    [
        ("TargetModel", "model-a.tar.gz", "X-Amzn-SageMaker-Target-Model"),
        ("TargetContainerHostname", "second", "X-Amzn-SageMaker-Target-Container-Hostname"),
        ("EnableExplanations", "`true`", "X-Amzn-SageMaker-Enable-Explanations"),
        ("SessionId", "NEW_SESSION", "X-Amzn-SageMaker-Session-Id"),
        ("InferenceComponentName", "ic-1", "X-Amzn-SageMaker-Inference-Component"),
    ],
)
def test_a_header_no_endpoint_here_can_honour_is_refused_naming_it(
    rt: Runtime, member: str, value: str, header: str
) -> None:
    rt.route()
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="ep", Body=b"[1]", **{member: value})
    assert (_code(e), _status(e)) == ("ValidationError", 400)
    message = e.value.response["Error"]["Message"]
    assert message.startswith(f"{header}: endpoint 'ep' cannot honour {member}")


def test_a_replica_error_is_model_error_with_its_status_and_message(rt: Runtime) -> None:
    rt.route()
    client = rt.client()
    for status, kind in ((500, "server"), (404, "client")):
        with pytest.raises(ClientError) as e:
            client.invoke_endpoint(
                EndpointName="ep", Body=b"[1]", CustomAttributes=f"status={status};say=boom"
            )
        assert (_code(e), _status(e)) == ("ModelError", 424)
        r = e.value.response
        assert (r["OriginalStatusCode"], r["OriginalMessage"]) == (status, "boom")
        assert r["LogStreamArn"] == (
            f"arn:aws:logs:{REGION}:{ACCOUNT}:log-group:/aws/sagemaker/Endpoints/ep"
        )
        assert r["Error"]["Message"].startswith(
            f'Received {kind} error ({status}) from main with message "boom".'
        )


def test_a_long_replica_error_is_truncated_in_the_original_message(rt: Runtime) -> None:
    rt.route()
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(
            EndpointName="ep", Body=b"[1]", CustomAttributes="status=500;say=" + "x" * 1000
        )
    assert e.value.response["OriginalMessage"] == "x" * 1000  # short enough: whole
    long = ReplicaAnswer(500, b"text/plain", "é".encode() * 5000, None)
    _, _, body = runtime.model_error(
        long, variant="main", endpoint="ep", region=REGION, account=ACCOUNT, request_id=b"r"
    )
    original = json.loads(body)["OriginalMessage"]
    assert original.startswith("é" * runtime.MAX_ORIGINAL_MESSAGE)
    assert original.endswith("... (10000 bytes in all)")


def test_a_replica_slower_than_the_deadline_is_model_error(rt: Runtime) -> None:
    rt.route()
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="ep", Body=b"[1]", CustomAttributes="sleep=2")
    assert (_code(e), _status(e)) == ("ModelError", 424)
    assert "timed out while waiting for a response" in e.value.response["Error"]["Message"]
    assert e.value.response["LogStreamArn"].endswith("/aws/sagemaker/Endpoints/ep")


def test_an_unknown_endpoint_is_a_validation_error_naming_the_account(rt: Runtime) -> None:
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="nope", Body=b"[1]")
    assert (_code(e), _status(e)) == ("ValidationError", 400)
    assert e.value.response["Error"]["Message"] == f"Endpoint nope of account {ACCOUNT} not found."


def test_an_endpoint_not_in_service_yet_is_service_unavailable(rt: Runtime) -> None:
    rt.front.plane.endpoint_status = lambda name: ("Creating", "")
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert (_code(e), _status(e)) == ("ServiceUnavailable", 503)
    assert "is Creating, not in service yet" in e.value.response["Error"]["Message"]
    rt.front.plane.endpoint_status = lambda name: ("Failed", "the model did not load")
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert (_code(e), _status(e)) == ("ValidationError", 400)
    assert "the model did not load" in e.value.response["Error"]["Message"]


def test_a_variant_at_zero_held_too_long_is_model_not_ready(rt: Runtime) -> None:
    rt.route(VariantRoute("main", 1.0, (), config="cfg", scaled_to_zero=True))
    started = time.monotonic()
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert (_code(e), _status(e)) == ("ModelNotReadyException", 429)
    assert time.monotonic() - started >= TIMEOUT  # held for its deadline first
    assert "scaled to zero" in e.value.response["Error"]["Message"]


def test_a_body_over_6_mb_is_refused_before_it_is_read(rt: Runtime) -> None:
    rt.route()
    headers = rt.signed_headers(b"")
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (
        f"POST /endpoints/ep/invocations HTTP/1.1\r\nhost: {rt.url.removeprefix('http://')}\r\n"
        f"{head}content-length: {SIX_MB + 1}\r\n\r\n"
    ).encode()
    host, port = rt.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(raw)  # and never the body
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"\r\nx-amzn-errortype: ValidationError\r\n" in answer
    with pytest.raises(ClientError) as e:
        rt.client().invoke_endpoint(EndpointName="ep", Body=b"x" * (SIX_MB + 1))
    assert (_code(e), _status(e)) == ("ValidationError", 413)
    assert f"{SIX_MB}-byte limit" in e.value.response["Error"]["Message"]
    out = rt.client().invoke_endpoint(EndpointName="ep", Body=b"x" * SIX_MB)  # the limit itself
    assert len(json.loads(out["Body"].read())["body"]) == SIX_MB


# --- signatures refused -------------------------------------------------------------------------
def test_a_wrong_secret_is_invalid_signature(rt: Runtime) -> None:
    rt.route()
    with pytest.raises(ClientError) as e:
        rt.client(aws_secret_access_key=rt.secret[:-2] + "xx").invoke_endpoint(
            EndpointName="ep", Body=b"[1]"
        )
    assert (_code(e), _status(e)) == ("InvalidSignatureException", 403)
    assert "signature we calculated does not match" in e.value.response["Error"]["Message"]


def test_an_unknown_key_is_unrecognized_client_whether_or_not_the_endpoint_exists(
    rt: Runtime,
) -> None:
    rt.route()
    client = rt.client(aws_access_key_id="AKIAUNKNOWNUNKNOWN00")
    for name in ("ep", "nope"):
        with pytest.raises(ClientError) as e:
            client.invoke_endpoint(EndpointName=name, Body=b"[1]")
        assert (_code(e), _status(e)) == ("UnrecognizedClientException", 403)


def test_a_clock_off_by_more_than_five_minutes_is_refused(rt: Runtime) -> None:
    rt.route()
    client = rt.client()
    for skew in (timedelta(minutes=-6), timedelta(minutes=6)):
        when = datetime.now(UTC) + skew
        with (
            mock.patch("botocore.auth.get_current_datetime", return_value=when),
            pytest.raises(ClientError) as e,
        ):
            client.invoke_endpoint(EndpointName="ep", Body=b"[1]")
        assert (_code(e), _status(e)) == ("InvalidSignatureException", 403)
        assert "Signature expired" in e.value.response["Error"]["Message"]
    with mock.patch(
        "botocore.auth.get_current_datetime", return_value=datetime.now(UTC) - timedelta(minutes=4)
    ):
        assert client.invoke_endpoint(EndpointName="ep", Body=b"[1]")["InvokedProductionVariant"]


def test_another_region_is_refused_naming_this_one(rt: Runtime) -> None:
    rt.route()
    with pytest.raises(ClientError) as e:
        rt.client(region_name="eu-west-1").invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert (_code(e), _status(e)) == ("InvalidSignatureException", 400)
    assert "'us-east-1'" in e.value.response["Error"]["Message"]


def test_a_body_other_than_the_one_signed_is_refused(rt: Runtime) -> None:
    rt.route()
    headers = rt.signed_headers(b'{"amount": 1}')
    r = rt.post(b'{"amount": 1000}', headers)
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    assert r.json()["Message"] == r.json()["message"]
    assert r.headers["x-amzn-requestid"]
    assert rt.post(b'{"amount": 1}', headers).status_code == 200  # as signed, it passes


def test_a_signed_header_changed_or_dropped_is_refused(rt: Runtime) -> None:
    rt.route()
    headers = rt.signed_headers(b"[1]", headers={"Accept": "text/csv"})
    r = rt.post(b"[1]", {**headers, "Accept": "application/json"})
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    no_date = {k: v for k, v in headers.items() if k != "X-Amz-Date"}
    r = rt.post(b"[1]", no_date)
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (400, "IncompleteSignatureException")
    assert "X-Amz-Date" in r.json()["message"]


def test_an_unsigned_call_to_an_endpoint_with_keys_is_refused(rt: Runtime) -> None:
    rt.route()
    unsigned = rt.client(config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}))
    with pytest.raises(ClientError) as e:
        unsigned.invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert _status(e) == 401
    assert "API key" in e.value.response["Error"]["Message"]


def test_a_revoked_access_key_is_refused_at_once(rt: Runtime) -> None:
    rt.route()
    client = rt.client()
    client.invoke_endpoint(EndpointName="ep", Body=b"[1]")  # its signing key is cached now
    rt.plane.access_keys.revoke(rt.access_key_id)
    with pytest.raises(ClientError) as e:
        client.invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert _code(e) == "UnrecognizedClientException"


def test_a_public_endpoint_serves_any_caller(rt: Runtime) -> None:
    rt.route(public=True)
    unsigned = Config(signature_version=UNSIGNED, retries={"max_attempts": 1})
    for client in (
        rt.client(config=unsigned),
        rt.client(aws_access_key_id="AKIAUNKNOWNUNKNOWN00"),
        rt.client(aws_secret_access_key="wrong"),
        rt.client(),
    ):
        assert client.invoke_endpoint(EndpointName="ep", Body=b"[1]")["InvokedProductionVariant"]


# --- the product's own callers, and the metrics -----------------------------------------------
def test_bearer_callers_keep_the_products_shapes(rt: Runtime) -> None:
    rt.route()
    auth = {"Authorization": f"Bearer {rt.api_key}"}
    r = rt.post(b"[1]", {**auth, "X-Amzn-SageMaker-Custom-Attributes": "status=500;say=boom"})
    assert (r.status_code, r.text) == (500, "boom")  # the replica's answer, as it was
    assert r.headers["x-invoked-production-variant"] == "main"
    r = rt.post(b"[1]", {"Authorization": "Bearer orch_nope_nope"})
    assert (r.status_code, r.json()["code"]) == (401, "UnauthorizedException")
    r = rt.post(b"[1]", {**auth, "X-Amzn-SageMaker-Target-Model": "m.tar.gz"})
    assert (r.status_code, r.json()["field"]) == (400, "TargetModel")


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_signed_request_is_counted_exactly_once(rt: Runtime) -> None:
    rt.route()
    labels = {"endpoint": "ep", "variant": "main"}
    names = ("orch_invocations_total", "orch_overhead_latency_seconds_count")
    before = {n: sample(n, **labels) for n in names}
    errors = {
        c: sample("orch_invocation_errors_total", **labels, error_class=c) for c in ("4XX", "5XX")
    }
    client = rt.client()
    statuses = [200] * 10 + [500] * 3 + [429] * 2
    for status in statuses:
        attributes = f"status={status}"
        try:
            client.invoke_endpoint(EndpointName="ep", Body=b"[1]", CustomAttributes=attributes)
        except ClientError as e:
            assert e.response["OriginalStatusCode"] == status
    with pytest.raises(ClientError):  # refused: never reaches a variant, never counted
        rt.client(aws_secret_access_key="wrong").invoke_endpoint(EndpointName="ep", Body=b"[1]")
    deadline = time.monotonic() + 5
    while (
        sample("orch_invocations_total", **labels) - before["orch_invocations_total"]
        < len(statuses)
        and time.monotonic() < deadline
    ):
        time.sleep(0.05)  # the data plane flushes every 50 ms
    time.sleep(0.2)  # and nothing more arrives later
    for name in names:
        assert sample(name, **labels) - before[name] == len(statuses)
    assert sample("orch_invocation_errors_total", **labels, error_class="5XX") - errors["5XX"] == 3
    assert sample("orch_invocation_errors_total", **labels, error_class="4XX") - errors["4XX"] == 2
    assert sample("orch_concurrent_requests", **labels) == 0


# --- through a router worker ----------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["fastpath", "asgi"])
def worker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Runtime]:
    """A router worker process (``orchestrator.dataplane.worker``) on a port of its own, fed by
    the hub in this control plane: a request to ``url`` is served by the worker alone."""
    from orchestrator.dataplane.workers import RouterWorkers

    settings = _settings(tmp_path, fast_path=request.param == "fastpath")
    plane = build_control_plane(settings, backend=FakeBackend())
    record, secret = plane.access_keys.create(name="app", role="invoke", now=datetime.now(UTC))
    api_key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(UTC))
    front = create_app(plane, run_controller=False)
    port = _free_port()
    run_dir = Path(tempfile.mkdtemp(prefix="orch-t-"))  # short enough for AF_UNIX
    hub = RouterWorkers(
        front.plane, count=1, host="127.0.0.1", port=port, run_dir=run_dir,
        series=plane.series, clock=time.time,
    )  # fmt: skip
    front.plane.started_hooks.append(hub.start)
    front.plane.stopping_hooks.append(hub.stop)
    with ServerThread(container_app) as replica, ServerThread(front):
        rt = Runtime(
            f"http://127.0.0.1:{port}", front, plane, record.access_key_id, secret, replica.url,
            api_key,
        )  # fmt: skip
        rt.route()
        deadline = time.monotonic() + 30
        while True:  # until the worker listens and has the route
            try:
                if rt.post(b"[1]", rt.signed_headers(b"[1]")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the router worker did not start"
            time.sleep(0.1)
        yield rt
        rt.close()
    plane.store.close()


def test_a_router_worker_serves_signed_calls_with_the_hubs_keys(worker: Runtime) -> None:
    client = worker.client()
    out = client.invoke_endpoint(EndpointName="ep", Body=b"[1]", CustomAttributes="a=1")
    assert (out["InvokedProductionVariant"], out["CustomAttributes"]) == ("main", "handled;a=1")
    headers = worker.signed_headers(b'{"amount": 1}')
    r = worker.post(b'{"amount": 1000}', headers)
    assert (r.status_code, r.headers["x-amzn-errortype"]) == (403, "InvalidSignatureException")
    with pytest.raises(ClientError) as e:
        worker.client(aws_access_key_id="AKIAUNKNOWNUNKNOWN00").invoke_endpoint(
            EndpointName="ep", Body=b"[1]"
        )
    assert _code(e) == "UnrecognizedClientException"
    with pytest.raises(ClientError) as e:
        client.invoke_endpoint(EndpointName="ep", Body=b"[1]", CustomAttributes="status=503")
    assert (_code(e), e.value.response["OriginalStatusCode"]) == ("ModelError", 503)


def test_a_revoked_access_key_is_refused_by_the_worker_at_once(worker: Runtime) -> None:
    client = worker.client()
    for _ in range(3):  # cached in the worker and in the hub now
        client.invoke_endpoint(EndpointName="ep", Body=b"[1]")
    worker.plane.access_keys.revoke(worker.access_key_id)
    with pytest.raises(ClientError) as e:
        client.invoke_endpoint(EndpointName="ep", Body=b"[1]")
    assert _code(e) == "UnrecognizedClientException"
