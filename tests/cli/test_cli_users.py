"""``orch users`` and ``orch keys --user``: identities, their policies, their keys."""

from __future__ import annotations

import json
from pathlib import Path

from cli_harness import Cli

ARN = "arn:aws:sagemaker:us-east-1:000000000000"


def test_users_and_their_keys(cli: Cli, tmp_path: Path) -> None:
    policy = tmp_path / "ep-1.json"
    policy.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sagemaker:InvokeEndpoint",
         "Resource": f"{ARN}:endpoint/ep-1"}]}))  # fmt: skip
    made = cli.json("users", "create", "svc", "--service", "--inline", str(policy),
                    "--policy", "ReadOnly", "--role", "invoke")  # fmt: skip
    assert made["Kind"] == "service" and list(made["InlinePolicies"]) == ["ep-1"]
    key = cli.json("keys", "create", "ci", "--user", "svc", "--expires", "3600")
    assert key["ApiKey"].startswith("orch_") and key["Expires"]
    assert cli("models", "list", api_key=key["ApiKey"]).exit_code == 0
    refused = cli("users", "create", "eve", api_key=key["ApiKey"])
    assert refused.exit_code == 1 and "orchestrator:CreateUser" in refused.stderr
    out = cli.ok("users", "describe", "svc").stdout
    assert "ReadOnly" in out and key["KeyId"] in out and key["ApiKey"] not in out
    listed = cli.json("keys", "list", "--user", "svc")["Keys"]
    assert [k["KeyId"] for k in listed] == [key["KeyId"]]
    rotated = cli.json("keys", "rotate", key["KeyId"], "--user", "svc")
    assert rotated["Replaced"] == key["KeyId"]
    assert cli("models", "list", api_key=key["ApiKey"]).exit_code == 1
    assert cli("models", "list", api_key=rotated["ApiKey"]).exit_code == 0
    cli.ok("keys", "revoke", rotated["KeyId"], "--user", "svc")
    assert cli("models", "list", api_key=rotated["ApiKey"]).exit_code == 1
    as_role = cli.json("keys", "create", "inv", "--user", "svc", "--as", "invoke")
    assert as_role["Role"] == "invoke"
    assert cli("models", "list", api_key=as_role["ApiKey"]).exit_code == 1
    cli.ok("users", "update", "svc", "--policy", "AdministratorAccess")
    assert "AdministratorAccess" in cli.ok("users", "list").stdout
    cli.ok("users", "delete", "svc")
    assert cli("users", "describe", "svc").exit_code == 1
    assert cli("models", "list", api_key=as_role["ApiKey"]).exit_code == 1


def test_the_last_administrator_identity_cannot_be_deleted(cli: Cli) -> None:
    cli.ok("users", "create", "root", "--policy", "AdministratorAccess")
    key = cli.json("keys", "create", "k", "--user", "root")
    [first] = cli.json("keys", "list")["ApiKeys"][:1]
    assert cli("keys", "revoke", first["KeyId"], api_key=key["ApiKey"]).exit_code == 0
    refused = cli("users", "delete", "root", api_key=key["ApiKey"])
    assert refused.exit_code == 1 and "last one with administrator access" in refused.stderr


def test_bad_policies_are_named(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Statement": [
        {"Effect": "Allow", "Action": "sagemaker:CreateTrainingJobs", "Resource": "*"}]}))  # fmt: skip
    refused = cli("users", "create", "x", "--inline", str(bad))
    assert refused.exit_code == 1
    assert "InlinePolicies.bad.Statement[0].Action[0]" in refused.stderr
    assert "sagemaker:CreateTrainingJob" in refused.stderr
    missing = cli("users", "create", "x", "--inline", str(tmp_path / "none.json"))
    assert missing.exit_code == 1 and "--inline" in missing.stderr
    assert "sagemaker:InvokeEndpoint" in cli.ok("users", "actions").stdout
    assert "DataScientist" in cli.ok("users", "policies").stdout
