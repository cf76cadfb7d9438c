"""``orch tls`` and ``orch server``'s TLS options (docs/security.md, "TLS")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import orchestrator.api.server
from orchestrator import tls
from orchestrator.cli import app
from orchestrator.settings import Settings


def fingerprint_in(output: str) -> str:
    [found] = re.findall(r"SHA-256 fingerprint ([0-9A-F:]{95})", output)
    return found


def test_self_signed_writes_a_pair_and_prints_its_fingerprint(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["tls", "self-signed", "orch.lan", "--dir", str(tmp_path)])
    assert out.exit_code == 0, out.output
    cert, key = tmp_path / "orch.lan.crt", tmp_path / "orch.lan.key"
    assert f"wrote certificate {cert}" in out.output
    assert key.stat().st_mode & 0o777 == 0o600
    assert fingerprint_in(out.output) == tls.fingerprint(cert)
    again = CliRunner().invoke(app, ["tls", "self-signed", "orch.lan", "--dir", str(tmp_path)])
    assert f"reusing certificate {cert}" in again.output
    assert fingerprint_in(again.output) == fingerprint_in(out.output)
    shown = CliRunner().invoke(app, ["tls", "fingerprint", str(cert)])
    assert shown.output.strip() == tls.fingerprint(cert)


def test_self_signed_refuses_a_wildcard_host(tmp_path: Path) -> None:
    out = CliRunner().invoke(app, ["tls", "self-signed", "0.0.0.0", "--dir", str(tmp_path)])
    assert out.exit_code == 1
    assert "name the host clients connect to" in out.output


def test_the_default_directory_is_under_the_config_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("orchestrator.cli.tls.get_settings", lambda: Settings(config_dir=tmp_path))
    out = CliRunner().invoke(app, ["tls", "self-signed", "192.0.2.7"])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "tls" / "192.0.2.7.crt").is_file()


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_serve(settings: Settings, **_: Any) -> None:
        seen["settings"] = settings

    monkeypatch.setattr(orchestrator.api.server, "serve", fake_serve)
    return seen


def test_server_takes_a_certificate_and_the_insecure_flag(
    served: dict[str, Any], tmp_path: Path
) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    args = ["server", "--tls-cert", str(cert), "--tls-key", str(key), "--insecure-http-on-network"]
    out = CliRunner().invoke(app, args)
    assert out.exit_code == 0, out.output
    s: Settings = served["settings"].server
    assert (s.tls_cert_file, s.tls_key_file, s.allow_insecure_http) == (cert, key, True)


def test_server_self_signed_makes_the_pair_under_the_config_dir(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_CONFIG_DIR", str(tmp_path / "config"))
    out = CliRunner().invoke(app, ["server", "--host", "0.0.0.0", "--self-signed", "orch.lan"])
    assert out.exit_code == 0, out.output
    s: Settings = served["settings"]
    assert s.server.tls_cert_file == tmp_path / "config" / "tls" / "orch.lan.crt"
    assert s.server.tls_key_file == tmp_path / "config" / "tls" / "orch.lan.key"
    assert s.server.host == "0.0.0.0" and not s.server.allow_insecure_http
    assert fingerprint_in(out.output) == tls.fingerprint(s.server.tls_cert_file), out.output


def test_server_self_signed_or_a_certificate_not_both(served: dict[str, Any]) -> None:
    out = CliRunner().invoke(app, ["server", "--self-signed", "orch.lan", "--tls-cert", "c.pem"])
    assert out.exit_code == 1
    assert "--self-signed makes its own certificate" in out.output
    assert "settings" not in served


def test_server_refuses_plain_http_on_the_network_before_starting(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app, ["server", "--host", "0.0.0.0", "--home", str(tmp_path), "--backend", "fake"]
    )
    assert out.exit_code == 1
    assert "refusing to serve plain HTTP on 0.0.0.0" in out.output
    assert "--insecure-http-on-network" in out.output
    assert not (tmp_path / "state.db").exists()


def tls_section() -> str:
    text = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    start = text.index("## TLS")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_documented_commands_parse(
    served: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ORCH_CONFIG_DIR", str(tmp_path / "config"))
    blocks = re.findall(r"```sh\n(.*?)```", tls_section(), re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("orch ")]
    assert len(lines) == 4
    for line in lines:
        out = CliRunner().invoke(app, line.split()[1:])
        assert out.exit_code != 2, (line, out.output)  # 2: a usage error (an unknown option)
        assert "No such option" not in out.output
    assert (tmp_path / "config" / "tls" / "orch.example.lan.crt").is_file()


def test_the_documented_python_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [block] = re.findall(r"```python\n(.*?)```", tls_section(), re.S)
    tls.self_signed("orch.example.lan", tmp_path)
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {"api_key": "orch_example"}
    exec(compile(block, "docs/security.md", "exec"), scope)
    client = scope["client"]
    assert client.ca_bundle == Path("orch.example.lan.crt")
    assert client.endpoint_url == "https://orch.example.lan:8686"
    client.close()


def test_fingerprints_print_as_they_are(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """ ":CD:" is an emoji code to rich: neither orch tls nor orch server may render it."""
    made = tls.CertificateFiles(tmp_path / "c.crt", tmp_path / "c.key", "AB:CD:EF", created=True)
    monkeypatch.setattr(tls, "self_signed", lambda *_a, **_k: made)
    out = CliRunner().invoke(app, ["tls", "self-signed", "orch.lan", "--dir", str(tmp_path)])
    assert "SHA-256 fingerprint AB:CD:EF\n" in out.output

    def fake_serve(settings: Settings, *, announce: Any, **_: Any) -> None:
        announce(f"TLS certificate {tmp_path}/c.crt, SHA-256 fingerprint AB:CD:EF")

    monkeypatch.setattr(orchestrator.api.server, "serve", fake_serve)
    out = CliRunner().invoke(app, ["server"])
    assert "SHA-256 fingerprint AB:CD:EF\n" in out.output
