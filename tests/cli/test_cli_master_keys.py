"""``orch keys rotate-master | master-status | retire-master`` over the REST API, with the
control plane's own re-wrap thread doing the work."""

from __future__ import annotations

import time

from cli_harness import Cli

from orchestrator.api.aws.credentials import open_secret


def _wait_for_rewrap(cli: Cli) -> dict[str, object]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = cli.json("keys", "master-status")
        if status["Rewrap"]["State"] == "done" and not status["Rewrap"]["Pending"]:
            return dict(status)
        time.sleep(0.05)
    raise AssertionError(f"the re-wrap did not finish: {status}")


def test_rotate_rewrap_retire(cli: Cli) -> None:
    objects = cli.plane.objects
    for i in range(5):
        objects.put_bytes(f"s3://data/item-{i}", b"payload %d" % i)
    before = cli.json("keys", "master-status", "--census")
    [old] = before["Versions"]
    assert (old["State"], old["Objects"], before["Rewrap"]["State"]) == ("active", 5, "idle")
    assert "re-wrap: never ran" in cli.ok("keys", "master-status").stdout

    rotated = cli.ok("keys", "rotate-master").stdout
    new = cli.json("keys", "master-status")["ActiveKeyId"]
    assert new != old["KeyId"] and f"new master key version {new} is active" in rotated
    assert objects.put_bytes("s3://data/after", b"x").key_id == new

    status = _wait_for_rewrap(cli)
    rewrap = status["Rewrap"]
    assert rewrap["Done"] == rewrap["Total"] >= 5  # type: ignore[index]
    census = cli.json("keys", "master-status", "--census")
    assert {v["KeyId"]: v["Objects"] for v in census["Versions"]} == {old["KeyId"]: 0, new: 6}
    table = cli.ok("keys", "master-status").stdout
    assert "objects (100%)" in table and new in table

    refused_active = cli("keys", "retire-master", new)
    assert refused_active.exit_code == 1 and "is the active one" in refused_active.stderr
    done = cli.ok("keys", "retire-master", old["KeyId"]).stdout
    assert f"retired master key version {old['KeyId']}" in done
    states = {v["KeyId"]: v["State"] for v in cli.json("keys", "master-status")["Versions"]}
    assert states == {old["KeyId"]: "retired", new: "active"}
    assert objects.get_bytes("s3://data/item-3") == b"payload 3"


def test_retire_in_use_names_the_count_and_only_admins_may(cli: Cli) -> None:
    cli.plane.master_keys.service.stop()  # no background pass: the old version stays in use
    for i in range(3):
        cli.plane.objects.put_bytes(f"s3://data/item-{i}", b"p")
    old = cli.json("keys", "master-status")["ActiveKeyId"]
    cli.ok("keys", "rotate-master")
    refused = cli("keys", "retire-master", old)
    assert refused.exit_code == 1
    assert "3 objects" in refused.stderr and "wait for the re-wrap" in refused.stderr
    missing = cli("keys", "retire-master", "k-nope")
    assert missing.exit_code == 1 and "not in the keyring" in missing.stderr
    invoker = cli.json("keys", "create", "bot", "--role", "invoke")["ApiKey"]
    for args in (("rotate-master",), ("master-status",), ("retire-master", old)):
        denied = cli("keys", *args, api_key=invoker)
        assert (
            denied.exit_code == 1
            and "MasterKey" in denied.stderr
            and "may not orchestrator:" in denied.stderr
        )


def test_access_key_secrets_move_with_the_rewrap(cli: Cli) -> None:
    made = cli.json("keys", "create", "sdk", "--aws", "--role", "admin")
    old = cli.json("keys", "master-status")["ActiveKeyId"]
    cli.ok("keys", "rotate-master")
    _wait_for_rewrap(cli)
    deadline = time.monotonic() + 10
    record = cli.plane.keys.get_access_key(made["AccessKeyId"])
    while record is not None and old in record.sealed_secret and time.monotonic() < deadline:
        time.sleep(0.05)
        record = cli.plane.keys.get_access_key(made["AccessKeyId"])
    assert record is not None and old not in record.sealed_secret
    cli.ok("keys", "retire-master", old)
    # The secret still opens (SigV4 requests keep working) under the new version.
    assert open_secret(cli.plane.access_keys.keyring, record) == made["SecretAccessKey"]
