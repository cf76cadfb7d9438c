"""Replica traffic over TLS on the process backend (``ORCH_SERVING__REPLICA_TLS=true``,
docs/security.md "Replica traffic"): each replica serves HTTPS only, with a certificate (0600)
from the control plane's replica CA; invocations through the control plane and a router
worker reach it over verified TLS; a replica whose certificate comes from another CA never
becomes ready and the endpoint's failure says why."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator import tls
from orchestrator.client import Client
from orchestrator.errors import OrchestratorError
from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env
from tests.e2e.test_endpoints_traffic import CONSTANT, ROW, make_model

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    extra: dict[str, str] = getattr(request, "param", {})
    env = server_env(
        tmp_path, ORCH_SERVING__REPLICA_TLS="true", ORCH_SERVER__ROUTER_WORKERS="2", **extra
    )
    s = RunningServer(root=tmp_path, env=env)
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def deploy(c: Client, name: str, **variant: object) -> None:
    c.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[{"VariantName": "main", "ModelName": "m", **variant}],
    )
    c.create_endpoint(EndpointName=name, EndpointConfigName=name)


def replica_root(home: Path, endpoint: str) -> Path:
    [root] = [p for p in (home / "work" / "endpoints" / endpoint).iterdir() if p.is_dir()]
    return root


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_invocations_reach_the_replica_over_verified_tls(
    tls_server: RunningServer, tmp_path: Path
) -> None:
    c = tls_server.client()
    make_model(c, tmp_path, "m", CONSTANT, ANSWER="5")
    deploy(c, "secure")
    c.wait_for_endpoint("secure", timeout=90)
    for _ in range(8):  # the control plane's loop and the router worker's, by the kernel
        assert json.loads(c.invoke_endpoint("secure", ROW).body)["predictions"] == [5]

    ca = tmp_path / "config" / "tls" / "replica-ca.crt"
    assert mode(ca) == mode(ca.with_suffix(".key")) == 0o600
    root = replica_root(tmp_path / "home", "secure")
    doc = json.loads((root / "replica.json").read_text())
    cert, key = Path(doc["tls_cert"]), Path(doc["tls_key"])
    assert mode(cert) == mode(key) == 0o600
    port = (root / "port").read_text().strip()
    # HTTPS only: plain HTTP gets no answer, and the certificate verifies with the CA alone.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2, trust_env=False)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"https://127.0.0.1:{port}/ping", timeout=2, trust_env=False)
    ping = httpx.get(
        f"https://127.0.0.1:{port}/ping",
        verify=tls.replica_client_context(ca),
        timeout=2,
        trust_env=False,
    )
    assert ping.status_code == 200


@pytest.mark.parametrize(
    "tls_server",
    [
        {
            "ORCH_CONTROLLER__REPLICA_STARTUP_TIMEOUT_SECONDS": "10",
            "ORCH_CONTROLLER__REPLICA_MAX_START_FAILURES": "1",
        }
    ],
    indirect=True,
)
def test_a_replica_with_a_certificate_from_another_ca_is_refused(
    tls_server: RunningServer, tmp_path: Path
) -> None:
    c = tls_server.client()
    make_model(c, tmp_path, "m", CONSTANT)
    deploy(c, "first")
    c.wait_for_endpoint("first", timeout=90)
    # A new CA under the control plane's feet: replicas launched from now on get leaves the
    # running data plane and health check (which trust the old one) must refuse.
    ca_dir = tmp_path / "config" / "tls"
    for f in ca_dir.glob("replica-ca.*"):
        f.unlink()
    deploy(c, "stranger")
    with pytest.raises(OrchestratorError, match="TLS handshake with the replica failed"):
        c.wait_for_endpoint("stranger", timeout=90)
    described = c.describe_endpoint("stranger")
    assert described.EndpointStatus == "Failed"
    assert "CERTIFICATE_VERIFY_FAILED" in (described.FailureReason or "")
    with pytest.raises(OrchestratorError):  # no route to the refused replica
        c.invoke_endpoint("stranger", ROW)
    # The endpoint with the trusted certificate still serves.
    assert json.loads(c.invoke_endpoint("first", ROW).body)["predictions"] == [42]
