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
    assert refused.exit_code == 1 and "may not orchestrator:ListApiKeys" in refused.stderr
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


def _signed_list_training_jobs(cli: Cli, akid: str, secret: str) -> int:
    """ListTrainingJobs over the SageMaker wire protocol, signed with botocore's signer."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(
        method="POST", url="http://testserver/", data=b"{}",
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs",
                 "Content-Type": "application/x-amz-json-1.1"},
    )  # fmt: skip
    SigV4Auth(Credentials(akid, secret), "sagemaker", "us-east-1").add_auth(request)
    r = cli.http.post("/", content=b"{}", headers=dict(request.headers.items()))
    return r.status_code


def test_aws_access_keys_create_list_revoke(cli: Cli) -> None:
    made = cli.json("keys", "create", "sdk", "--aws", "--role", "admin")
    akid, secret = made["AccessKeyId"], made["SecretAccessKey"]
    assert akid.startswith("AKIA") and len(akid) == 20 and len(secret) == 40
    # The human rendering prints what boto3 and the SDK read from the environment.
    shown = cli.ok("keys", "create", "sdk2", "--aws").stdout
    assert "export AWS_ACCESS_KEY_ID=AKIA" in shown and "AWS_DEFAULT_REGION=us-east-1" in shown
    assert _signed_list_training_jobs(cli, akid, secret) == 200
    listed = cli.json("keys", "list")
    assert [a["Name"] for a in listed["AccessKeys"]] == ["sdk", "sdk2"]
    assert all("SecretAccessKey" not in a for a in listed["AccessKeys"])
    table = cli.ok("keys", "list").stdout
    assert akid in table and secret not in table and "aws" in table
    out = cli.ok("keys", "revoke", akid).stdout
    assert f"revoked access key {akid} (sdk)" in out
    assert _signed_list_training_jobs(cli, akid, secret) == 403
    again = cli("keys", "revoke", akid)
    assert again.exit_code == 1 and "already revoked" in again.stderr
    missing = cli("keys", "revoke", "AKIANOSUCHKEYNOSUCH0")
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_the_secret_is_sealed_at_rest(cli: Cli) -> None:
    made = cli.json("keys", "create", "sdk", "--aws")
    [record] = cli.plane.store.list_access_keys()
    assert made["SecretAccessKey"] not in record.sealed_secret
    assert record.sealed_secret.startswith("v1:")
