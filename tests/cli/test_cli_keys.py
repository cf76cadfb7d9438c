"""``orch keys``: create shows the secret once, list never does, revoke stops the key."""

from __future__ import annotations

from cli_harness import Cli


def test_create_list_revoke(cli: Cli) -> None:
    made = cli.json("keys", "create", "ci-bot", "--role", "invoke")
    assert made["Role"] == "invoke" and made["ApiKey"].startswith(f"orch_{made['KeyId']}_")
    listed = cli.json("keys", "list")["ApiKeys"]
    assert [k["Name"] for k in listed] == ["t", "ci-bot"]
    assert all("ApiKey" not in k for k in listed)
    table = cli.ok("keys", "list").stdout
    assert "ci-bot" in table and made["ApiKey"] not in table
    # An invoke key may not manage keys.
    refused = cli("keys", "list", api_key=made["ApiKey"])
    assert refused.exit_code == 1 and "may not key:list" in refused.stderr
    out = cli.ok("keys", "revoke", made["KeyId"]).stdout
    assert f"revoked key {made['KeyId']} (ci-bot)" in out
    assert cli.json("keys", "list")["ApiKeys"][1]["Revoked"] is True
    gone = cli("keys", "list", api_key=made["ApiKey"])
    assert gone.exit_code == 1 and "missing or invalid API key" in gone.stderr


def test_bad_role_and_unknown_key_are_clean_errors(cli: Cli) -> None:
    bad = cli("keys", "create", "x", "--role", "root")
    assert bad.exit_code == 2 and "--role" in bad.stderr
    missing = cli("keys", "revoke", "nope")
    assert missing.exit_code == 1 and "API key 'nope' does not exist" in missing.stderr


def test_the_last_admin_key_cannot_be_revoked(cli: Cli) -> None:
    [me] = cli.json("keys", "list")["ApiKeys"]
    refused = cli("keys", "revoke", me["KeyId"])
    assert refused.exit_code == 1 and "last admin key" in refused.stderr
    other = cli.json("keys", "create", "second-admin", "--role", "admin")
    done = cli("keys", "revoke", me["KeyId"], api_key=other["ApiKey"])
    assert done.exit_code == 0, done.output
    # Revoked in the key cache too: the key that was just used stops working at once.
    assert cli("keys", "list").exit_code == 1
