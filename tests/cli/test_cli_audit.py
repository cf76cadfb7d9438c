"""``orch audit``: lookup (table, json, jsonl), export, verify (OK, and a tampered trail named
with exit 1), the public key."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from cli_harness import Cli

from orchestrator.audit import AuditTrail


def _trail(cli: Cli) -> AuditTrail:
    trail = cli.plane.audit
    assert trail is not None
    return trail


def test_lookup_table_json_and_jsonl(cli: Cli) -> None:
    cli.ok("keys", "create", "ci-bot")
    table = cli.ok("audit", "lookup", "--action", "CreateApiKey").stdout
    assert "CreateApiKey" in table and "t" in table
    found = cli.json("audit", "lookup", "--action", "CreateApiKey")["Events"]
    assert [e["requestParameters"]["Name"] for e in found] == ["ci-bot"]
    lines = cli.ok("audit", "lookup", "--output", "jsonl", "--max-results", "2").stdout
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == 2 and records[0]["seq"] > records[1]["seq"]
    assert cli.json("audit", "lookup", "--identity", "nobody")["Events"] == []


def test_export_writes_json_lines(cli: Cli, tmp_path: Path) -> None:
    made = cli.json("keys", "create", "exported")
    out = tmp_path / "trail.jsonl"
    result = cli.ok("audit", "export", "--file", str(out))
    assert "records to" in result.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert any(r["eventName"] == "CreateApiKey" for r in records)
    assert made["ApiKey"] not in out.read_text()


def test_verify_ok_then_a_tampered_record_named(cli: Cli) -> None:
    cli.ok("keys", "list")
    _trail(cli).flush(digest=True)
    ok = cli.ok("audit", "verify").stdout
    assert ok.startswith("OK: ") and "digests verified" in ok
    trail = _trail(cli)
    key = trail.record_files()[0].key
    data = trail.read(key).replace(b'"statusCode":200', b'"statusCode":201', 1)
    trail.objects.put_bytes(f"s3://{trail.bucket}/{key}", data)
    failed = cli("audit", "verify")
    assert failed.exit_code == 1
    assert "FAILED" in failed.stderr and key in failed.stderr


def test_public_key(cli: Cli) -> None:
    out = cli.ok("audit", "public-key")
    assert out.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert "fingerprint SHA256:" in out.stderr


def test_bad_time_is_a_usage_error(cli: Cli) -> None:
    bad = cli("audit", "lookup", "--start", "yesterday")
    assert bad.exit_code == 2 and "--start" in bad.stderr


def test_the_security_doc_commands_run(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # export writes its file here
    doc = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    section = doc.split("## Audit trail", 1)[1].split("\n## ", 1)[0]
    commands = [
        shlex.split(line)
        for block in re.findall(r"```bash\n(.*?)```", section, re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    assert commands
    for argv in commands:
        assert argv[:2] == ["orch", "audit"]
        result = cli(*argv[1:])
        assert result.exit_code == 0, (argv, result.output)
