"""``orch server`` over HTTPS (docs/security.md, "TLS"): a self-signed certificate made for a
host, its fingerprint printed, the client and the CLI verifying it (a CA bundle, or the
credentials file the server keeps pointing at itself), an unknown certificate refused with the
fix named, invocations through the fast path of the control plane and of a router worker,
the management API through a worker; and plain HTTP refused on the network unless the flag
says so."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import boto3
import httpx
import pytest

from orchestrator import tls
from orchestrator.client import Client
from orchestrator.errors import ValidationError
from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env
from tests.e2e.test_endpoints_traffic import CONSTANT, ROW, make_model, wait_until

pytestmark = pytest.mark.slow


@dataclass
class ServerWith(RunningServer):
    """A RunningServer started with extra ``orch server`` options."""

    args: list[str] = field(default_factory=list)

    def start(self) -> None:
        ready = self.root / "server.url"
        ready.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "orchestrator.cli", "server", "--ready-file", str(ready)]
        with open(self.root / "server.log", "ab") as log:
            self.proc = subprocess.Popen(
                [*argv, *self.args], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 30
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.root / "server.log").read_text())
            time.sleep(0.05)
        self.url = ready.read_text().strip()
        self.key = json.loads((self.root / "config" / "credentials.json").read_text())["api_key"]

    @property
    def log(self) -> str:
        return (self.root / "server.log").read_text()


@pytest.fixture
def https(tmp_path: Path) -> Iterator[ServerWith]:
    env = server_env(tmp_path, ORCH_SERVER__ROUTER_WORKERS="2")
    s = ServerWith(root=tmp_path, env=env, args=["--self-signed", "localhost"])
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def per_worker(url: str, key: str, cert: Path) -> dict[str, float]:
    text = httpx.get(
        f"{url}/metrics",
        headers={"Authorization": f"Bearer {key}"},
        verify=tls.client_context(cert),
        trust_env=False,
    ).text
    found = re.findall(r'orch_router_worker_invocations_total\{worker="(\d+)"\} ([0-9.e+]+)', text)
    return {w: float(n) for w, n in found}


def test_https_with_a_self_signed_certificate_end_to_end(https: ServerWith, tmp_path: Path) -> None:
    cert = tmp_path / "config" / "tls" / "localhost.crt"
    assert https.url.startswith("https://127.0.0.1:")
    assert (tmp_path / "config" / "tls" / "localhost.key").stat().st_mode & 0o777 == 0o600
    printed = re.findall(r"SHA-256 fingerprint ([0-9A-F:]{95})", https.log)
    assert printed and set(printed) == {tls.fingerprint(cert)}

    # The credentials file names the HTTPS URL and the certificate to trust.
    creds = json.loads((tmp_path / "config" / "credentials.json").read_text())
    assert creds["endpoint_url"] == https.url
    assert Path(creds["ca_bundle"]) == cert.resolve()

    # A client without the CA bundle is refused, with the fix named.
    with Client(https.url, https.key) as blind, pytest.raises(ValidationError) as e:
        blind.list_endpoints()
    assert e.value.field == "ORCH_CA_BUNDLE"
    assert "not trusted" in e.value.message and "--ca-bundle" in e.value.message

    c = Client(https.url, https.key, ca_bundle=cert)
    https.clients.append(c)
    make_model(c, tmp_path, "sec", CONSTANT, ANSWER="7")
    c.create_endpoint_config(
        EndpointConfigName="sec", ProductionVariants=[{"VariantName": "main", "ModelName": "sec"}]
    )
    c.create_endpoint(EndpointName="sec", EndpointConfigName="sec")
    c.wait_for_endpoint("sec", timeout=90)
    assert json.loads(c.invoke_endpoint("sec", ROW).body)["predictions"] == [7]
    # boto3 (and the SageMaker SDK) verify with their own option: verify= or AWS_CA_BUNDLE.
    access = c.create_access_key("app", role="invoke")
    runtime = boto3.client(
        "sagemaker-runtime", endpoint_url=https.url, region_name="us-east-1", verify=str(cert),
        aws_access_key_id=access.AccessKeyId, aws_secret_access_key=access.SecretAccessKey,
    )  # fmt: skip
    out = runtime.invoke_endpoint(EndpointName="sec", Body=ROW, ContentType="application/json")
    assert json.loads(out["Body"].read())["predictions"] == [7]
    runtime.close()  # its keep-alive connection would hold the server's graceful stop back

    # Every connection is TLS, whichever process the kernel gives it to: invocations and a
    # management call on fresh connections until both the control plane (worker 0) and the
    # router worker (1; the management call crosses its private socket to the API in TLS)
    # answered one connection.
    ctx = tls.client_context(cert)
    auth = {"Authorization": f"Bearer {https.key}", "Content-Type": "application/json"}
    seen: set[str] = set()

    def counted_since(before: dict[str, float]) -> dict[str, float]:
        now = per_worker(https.url, https.key, cert)
        return now if now != before else {}

    deadline = time.monotonic() + 60
    while seen != {"0", "1"}:
        assert time.monotonic() < deadline, per_worker(https.url, https.key, cert)
        before = per_worker(https.url, https.key, cert)
        with httpx.Client(verify=ctx, trust_env=False, timeout=30) as http:
            r = http.post(f"{https.url}/endpoints/sec/invocations", content=ROW, headers=auth)
            assert r.status_code == 200 and json.loads(r.content)["predictions"] == [7]
            r = http.get(f"{https.url}/api/v1/endpoints/sec", headers=auth)
            assert r.status_code == 200 and r.json()["EndpointName"] == "sec"
        after = wait_until("the invocation counted", lambda b=before: counted_since(b), 10)
        seen |= {w for w, n in after.items() if n > before.get(w, 0)}
    with pytest.raises(httpx.HTTPError):  # plain HTTP on the HTTPS port is not served
        httpx.get(https.url.replace("https://", "http://") + "/api/v1/endpoints", timeout=5)

    # The CLI just works from the credentials file, and with --ca-bundle given.
    cli = [sys.executable, "-m", "orchestrator.cli", "-o", "json"]
    out = subprocess.run(
        [*cli, "endpoints", "list"], env=https.env, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert [e["EndpointName"] for e in json.loads(out.stdout)["Endpoints"]] == ["sec"]
    elsewhere = {**server_env(tmp_path / "other"), "ORCH_API_KEY": https.key}
    args = ["--endpoint-url", https.url]
    out = subprocess.run(
        [*cli, *args, "endpoints", "list"],
        env=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 1 and "--ca-bundle" in out.stderr, out.stderr
    out = subprocess.run(
        [*cli, *args, "--ca-bundle", str(cert), "endpoints", "list"],
        env=elsewhere, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr


def test_plain_http_on_the_network_is_refused_unless_allowed(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    out = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "server", "--host", "0.0.0.0"],
        env=env, capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1
    assert "refusing to serve plain HTTP on 0.0.0.0" in out.stderr
    assert "ORCH_SERVER__ALLOW_INSECURE_HTTP" in out.stderr
    assert not (tmp_path / "config" / "credentials.json").exists()  # refused before anything

    s = ServerWith(root=tmp_path, env=env, args=["--host", "0.0.0.0", "--insecure-http-on-network"])
    s.start()
    try:
        assert s.url.startswith("http://0.0.0.0:")
        assert "allowed by ORCH_SERVER__ALLOW_INSECURE_HTTP" in s.log
        port = s.url.rsplit(":", 1)[1]
        with Client(f"http://127.0.0.1:{port}", s.key) as c:
            assert c.list_endpoints().Endpoints == []
    finally:
        s.stop()


def test_https_through_the_plain_asgi_front(tmp_path: Path) -> None:
    """With the fast path off, invocations take uvicorn's ASGI cycle: over TLS as well."""
    made = tls.self_signed("127.0.0.1", tmp_path / "certs")
    env = server_env(tmp_path, ORCH_SERVER__INVOCATION_FAST_PATH="false")
    env |= {
        "ORCH_SERVER__TLS_CERT_FILE": str(made.cert),
        "ORCH_SERVER__TLS_KEY_FILE": str(made.key),
    }
    s = ServerWith(root=tmp_path, env=env)
    s.start()
    try:
        assert f"SHA-256 fingerprint {made.fingerprint}" in s.log
        c = Client(s.url, s.key, ca_bundle=made.cert)
        s.clients.append(c)
        make_model(c, tmp_path, "slow", CONSTANT, ANSWER="3")
        c.create_endpoint_config(
            EndpointConfigName="slow",
            ProductionVariants=[{"VariantName": "main", "ModelName": "slow"}],
        )
        c.create_endpoint(EndpointName="slow", EndpointConfigName="slow")
        c.wait_for_endpoint("slow", timeout=90)
        assert json.loads(c.invoke_endpoint("slow", ROW).body)["predictions"] == [3]
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")
