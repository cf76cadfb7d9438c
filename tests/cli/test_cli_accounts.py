"""``orch accounts``: the server's administrator makes an account with its first
administrator (the key printed once), the tenant starts alone and sees only its own."""

from __future__ import annotations

import json
from typing import Any

from cli_harness import Cli


def as_tenant(cli: Cli, key: str, *args: str) -> Any:
    result = cli("-o", "json", *args, api_key=key)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_accounts_create_and_list(cli: Cli) -> None:
    made = cli.json("accounts", "create", "acme", "--admin", "acme-admin")
    assert len(made["AccountId"]) == 12 and made["ApiKey"].startswith("orch_")
    printed = cli.ok("accounts", "create", "other", "--admin", "other-admin").stdout
    assert "shown only now" in printed and "orch_" in printed
    key = made["ApiKey"]
    assert "acme" in cli.ok("accounts", "list").stdout
    assert [a["AccountName"] for a in cli.json("accounts", "list")["Accounts"]] == [
        "acme", "other"
    ]  # fmt: skip
    own = as_tenant(cli, key, "accounts", "list")["Accounts"]
    assert [a["AccountId"] for a in own] == [made["AccountId"]]
    # The tenant's administrator: its users land in its account; no accounts of its own make.
    assert as_tenant(cli, key, "users", "create", "dev")["Account"] == made["AccountId"]
    refused = cli("accounts", "create", "mine", api_key=key)
    assert refused.exit_code == 1 and "server's own account" in refused.stderr
    bad = cli("accounts", "create", "no spaces")
    assert bad.exit_code == 1 and "AccountName" in bad.stderr
    elsewhere = cli("users", "create", "x", "--account", "999999999999")
    assert elsewhere.exit_code == 1 and "999999999999" in elsewhere.stderr
    assert (
        cli.json("users", "create", "ops", "--account", made["AccountId"])["Account"]
        == (made["AccountId"])
    )


def test_whoami_names_the_key_s_account_and_bucket(cli: Cli) -> None:
    made = cli.json("accounts", "create", "acme", "--admin", "acme-admin")
    printed = cli.ok("accounts", "create", "beta").stdout
    beta = next(a for a in cli.json("accounts", "list")["Accounts"] if a["AccountName"] == "beta")
    assert f"default bucket s3://orchestrator-{beta['AccountId']}" in printed
    me = as_tenant(cli, made["ApiKey"], "accounts", "whoami")
    assert me["AccountId"] == made["AccountId"] and me["UserName"] == "acme-admin"
    assert me["DefaultBucket"] == f"orchestrator-{made['AccountId']}"
    printed = cli.ok("accounts", "whoami").stdout
    assert "of account 000000000000" in printed and "s3://orchestrator" in printed


def test_the_documented_account_commands_run(cli: Cli) -> None:
    import re
    import shlex
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "identities.md").read_text()
    section = doc.split("## Accounts (tenants)", 1)[1].split("\n## ", 1)[0]
    commands = [
        shlex.split(line)
        for block in re.findall(r"```bash\n(.*?)```", section, re.S)
        for line in block.splitlines()
        if line.strip()
    ]
    assert len(commands) == 3
    for argv in commands:
        assert argv[:2] == ["orch", "accounts"]
        result = cli(*argv[1:])
        assert result.exit_code == 0, (argv, result.output)
    assert "acme" in cli.ok("accounts", "list").stdout
