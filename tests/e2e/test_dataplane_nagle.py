"""No request through the data plane waits for a delayed ACK (the Nagle stall).

A sender that writes a request in two pieces on a socket without ``TCP_NODELAY`` holds the
second piece until the first is acknowledged, and the receiver (any Linux socket) delays
that ACK by 40 ms while it waits for the rest of the request: every such request takes
40 ms or more. nginx's upstream connections fell into it with bodies over its 16 KB body
buffer (``docs/benchmarks.md``). The data plane's hops are: the caller to the front (the
front writes its answer in two pieces: it must have ``TCP_NODELAY``) and the router to the
replica (the router writes each request in one piece, on a ``TCP_NODELAY`` socket; the
replica answers in two pieces, on a ``TCP_NODELAY`` socket). The control case shows the
40 ms bound is what a stall looks like on this machine.
"""

from __future__ import annotations

import json
import socket
import statistics
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import RunningServer, source_tarball

pytestmark = pytest.mark.slow

LENGTH = """
import json
def model_fn(model_dir):
    return None
def input_fn(body, content_type):
    return len(body)
def predict_fn(n, model):
    return n
def output_fn(n, accept):
    return json.dumps({"n": n}), "application/json"
"""
STALL_MS = 40.0


class KeepAlive:
    """One keep-alive connection; each request leaves in one write (``split``: two, the
    way a Nagle-prone proxy sends them, on a socket with Nagle on)."""

    def __init__(self, port: int, *, nagle: bool = False) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0 if nagle else 1)
        self.nagle = nagle

    def post(self, path: str, body: bytes) -> tuple[float, dict[str, object]]:
        head = (
            f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        if self.nagle:
            self.sock.sendall(head)
            self.sock.sendall(body)
        else:
            self.sock.sendall(head + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.sock.recv(65536)
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head_bytes.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += self.sock.recv(65536)
        took = (time.perf_counter() - started) * 1000
        assert head_bytes.startswith(b"HTTP/1.1 200"), head_bytes
        return took, json.loads(rest)

    def close(self) -> None:
        self.sock.close()


def test_no_request_through_the_router_waits_for_a_delayed_ack(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    c.upload_bytes(source_tarball({"README": "no weights"}), "s3://orchestrator/len/model.tar.gz")
    c.upload_bytes(source_tarball({"inference.py": LENGTH}), "s3://orchestrator/len/src.tgz")
    c.create_model(
        ModelName="len",
        PrimaryContainer={
            "ModelDataUrl": "s3://orchestrator/len/model.tar.gz",
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "s3://orchestrator/len/src.tgz",
            },
        },
    )
    c.create_endpoint_config(
        EndpointConfigName="len", ProductionVariants=[{"VariantName": "main", "ModelName": "len"}]
    )
    c.create_endpoint(EndpointName="len", EndpointConfigName="len", AuthMode="None")
    c.wait_for_endpoint("len", timeout=90)
    front_port = int(server.url.rsplit(":", 1)[1])
    [port_file] = (server.root / "home" / "work" / "endpoints" / "len").glob("*/port")
    replica_port = int(port_file.read_text())

    # Sizes: under one loopback segment (like the 100-row benchmark body that stalled behind
    # nginx), about two segments, and many segments.
    for size in (24 * 1024, 100 * 1024, 1024 * 1024):
        body = b"[" + b"1" * (size - 2) + b"]"
        client = KeepAlive(front_port)
        try:
            for _ in range(3):  # past the first exchanges, when Linux still ACKs at once
                client.post("/endpoints/len/invocations", body)
            times = []
            for _ in range(10):
                took, answer = client.post("/endpoints/len/invocations", body)
                assert answer == {"n": len(body)}
                times.append(took)
        finally:
            client.close()
        # A stall holds back every request of a kind (each waits for the delayed ACK), so the
        # median is over 40 ms; a single slow one is the machine being busy (CI measured one
        # 1 MB request at 69 ms among nine of 6-35 ms while other tests ran).
        median = statistics.median(times)
        assert median < STALL_MS, f"{size}-byte body: {[round(t, 1) for t in times]} ms"

    # The control: a Nagle-prone sender, straight to the replica, stalls on this machine.
    nagle = KeepAlive(replica_port, nagle=True)
    try:
        body = b"[" + b"1" * 8190 + b"]"
        for _ in range(3):
            nagle.post("/invocations", body)
        stalled = [nagle.post("/invocations", body)[0] for _ in range(5)]
    finally:
        nagle.close()
    assert statistics.median(stalled) >= STALL_MS, stalled
