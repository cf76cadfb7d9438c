"""Accounts and identities: the server's own administrator makes accounts (with a first
administrator and key), a tenant's administrator cannot; a tenant's users and keys are its
own, and another account's answer as absent ones; bad input names the field."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from orchestrator.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from tests.tenancy.conftest import Tenants

API = "/api/v1"


def test_the_server_s_administrator_makes_accounts_and_sees_them_all(tenants: Tenants) -> None:
    made = tenants.root.create_account("gamma")
    assert made["AccountName"] == "gamma" and len(made["AccountId"]) == 12
    assert "ApiKey" not in made and made["AccountId"].isdigit()
    # Its own bucket is made with it, and only it sees that bucket.
    assert made["DefaultBucket"] == f"orchestrator-{made['AccountId']}"
    assert tenants.local.plane.objects.bucket_owner(made["DefaultBucket"]) == made["AccountId"]
    listed = tenants.root.list_accounts()
    assert [a["AccountName"] for a in listed] == ["alpha", "beta", "gamma"]
    assert len({a["AccountId"] for a in listed} | {"000000000000"}) == 4
    # A tenant sees its own account only.
    assert [a["AccountId"] for a in tenants.a.client.list_accounts()] == [tenants.a.account]


def test_a_tenant_s_administrator_cannot_make_accounts(tenants: Tenants) -> None:
    with pytest.raises(PermissionDeniedError) as e:
        tenants.a.client.create_account("sneaky")
    assert e.value.status_code == 403 and "server's own account" in e.value.message
    assert [a["AccountName"] for a in tenants.root.list_accounts()] == ["alpha", "beta"]


def test_bad_account_input_names_the_field(tenants: Tenants) -> None:
    with pytest.raises(ValidationError) as bad:
        tenants.root.create_account("no spaces!")
    assert bad.value.field == "AccountName"
    with pytest.raises(ConflictError) as taken:
        tenants.root.create_account("alpha")
    assert taken.value.field == "AccountName" and "alpha" in taken.value.message
    with pytest.raises(ConflictError) as admin_taken:
        tenants.root.create_account("delta", admin=tenants.a.admin)
    assert admin_taken.value.field == "AdminUserName"
    assert "delta" not in [a["AccountName"] for a in tenants.root.list_accounts()]
    with pytest.raises(ValidationError) as malformed:
        tenants.root.create_user("u1", account="12ab")
    assert malformed.value.field == "Account"
    with pytest.raises(NotFoundError) as unknown:
        tenants.root.create_user("u1", account="123456789012")
    assert unknown.value.field == "Account" and "123456789012" in unknown.value.message


def test_the_new_administrator_s_key_works_alone(tenants: Tenants) -> None:
    made = tenants.root.create_account("solo", admin="solo-admin")
    with httpx.Client(
        base_url=tenants.local.url, headers={"Authorization": f"Bearer {made['ApiKey']}"}
    ) as h:
        users = h.get(f"{API}/users").json()["Users"]
        assert [u["UserName"] for u in users] == ["solo-admin"]
        assert users[0]["Account"] == made["AccountId"]
        assert h.post(f"{API}/models", json={"ModelName": "solo-m", "PrimaryContainer": {
            "Image": "x/serve:1"}}).status_code == 201  # fmt: skip
        arn = h.get(f"{API}/models/solo-m").json()["ModelArn"]
    assert f":{made['AccountId']}:model/solo-m" in arn


def test_a_tenant_s_users_land_in_its_account_and_are_its_own(tenants: Tenants) -> None:
    a, b = tenants.a.client, tenants.b.client
    made = a.create_user("a-dev", managed_policies=["DataScientist"])
    assert made["Account"] == tenants.a.account
    key = a.create_user_key("a-dev", "k")
    assert sorted(u["UserName"] for u in a.list_users()) == ["a-dev", tenants.a.admin]
    assert [u["UserName"] for u in b.list_users()] == [tenants.b.admin]
    root_users = [u["UserName"] for u in tenants.root.list_users()]
    assert "a-dev" not in root_users and tenants.a.admin not in root_users
    # The new user's key acts for A's account.
    with httpx.Client(
        base_url=tenants.local.url, headers={"Authorization": f"Bearer {key['ApiKey']}"}
    ) as h:
        assert h.get(f"{API}/models").json()["Models"] == []


def test_another_account_s_users_and_keys_answer_as_absent_ones(tenants: Tenants) -> None:
    a, bh = tenants.a.client, tenants.b.http
    a.create_user("a-dev", managed_policies=["DataScientist"])
    key_id = a.create_user_key("a-dev", "k")["KeyId"]
    calls = [
        ("GET", "/users/{u}", None),
        ("GET", "/users/{u}/keys", None),
        ("PUT", "/users/{u}/policies", {"ManagedPolicies": []}),
        ("POST", "/users/{u}/keys", {"Name": "k2"}),
        ("POST", "/users/{u}/keys/" + key_id + "/rotate", None),
        ("DELETE", "/users/{u}/keys/" + key_id, None),
        ("DELETE", "/users/{u}", None),
    ]
    for method, path, body in calls:
        other = bh.request(method, API + path.format(u="a-dev"), json=body)
        absent = bh.request(method, API + path.format(u="zz-dev"), json=body)
        assert other.status_code == absent.status_code == 404, (path, other.text, absent.text)
        assert other.text.replace("a-dev", "U") == absent.text.replace("zz-dev", "U"), path
    # The bare key routes: A's key is not B's to list or revoke.
    assert key_id not in bh.get(f"{API}/api-keys").text
    other = bh.delete(f"{API}/api-keys/{key_id}")
    absent = bh.delete(f"{API}/api-keys/000000000000")
    assert other.status_code == absent.status_code == 404
    assert other.text.replace(key_id, "K") == absent.text.replace("000000000000", "K")
    access = tenants.a.access_key_id
    assert access not in bh.get(f"{API}/access-keys").text
    assert bh.delete(f"{API}/access-keys/{access}").status_code == 404
    # All of it still A's, working.
    assert a.describe_user("a-dev")["Keys"][0]["Revoked"] is False


def test_a_tenant_names_another_account_as_an_absent_one(tenants: Tenants) -> None:
    a = tenants.a.client
    with pytest.raises(NotFoundError) as other:
        a.create_user("x1", account=tenants.b.account)
    with pytest.raises(NotFoundError) as absent:
        a.create_user("x1", account="999999999999")
    assert other.value.message.replace(tenants.b.account, "A") == absent.value.message.replace(
        "999999999999", "A"
    )
    assert a.create_user("x1", account=tenants.a.account)["Account"] == tenants.a.account


def test_the_server_s_administrator_makes_users_in_an_account(tenants: Tenants) -> None:
    made = tenants.root.create_user("b-ops", account=tenants.b.account)
    assert made["Account"] == tenants.b.account
    assert "b-ops" in [u["UserName"] for u in tenants.b.client.list_users()]
    assert "b-ops" not in [u["UserName"] for u in tenants.root.list_users()]
    # Names are unique across accounts: a duplicate of one's own, whoever holds it.
    with pytest.raises(ConflictError) as e:
        tenants.a.client.create_user("b-ops")
    assert e.value.field == "UserName"


def test_the_caller_is_told_its_account_and_default_bucket(tenants: Tenants) -> None:
    me = tenants.a.client.caller_identity()
    assert me == {
        "UserName": tenants.a.admin,
        "AccountId": tenants.a.account,
        "Arn": f"arn:aws:iam::{tenants.a.account}:user/{tenants.a.admin}",
        "DefaultBucket": f"orchestrator-{tenants.a.account}",
    }
    assert tenants.root.caller_identity()["DefaultBucket"] == "orchestrator"
    assert tenants.root.caller_identity()["AccountId"] == "000000000000"
    # A data scientist may ask too (every managed policy allows it).
    tenants.a.client.create_user("a-ds", managed_policies=["DataScientist"])
    key = tenants.a.client.create_user_key("a-ds", "k")["ApiKey"]
    with httpx.Client(base_url=tenants.local.url, headers={"Authorization": f"Bearer {key}"}) as h:
        assert h.get(f"{API}/caller").json()["AccountId"] == tenants.a.account


def test_a_tenant_s_estimator_uploads_to_its_own_bucket(tenants: Tenants, tmp_path: Path) -> None:
    from orchestrator.client import Estimator

    script = tmp_path / "train.py"
    script.write_text("print('loss=1')\n")
    est = Estimator(entry_point=str(script), client=tenants.a.client)
    assert est.bucket == tenants.a.bucket
    est.fit(wait=False)
    job = tenants.a.client.describe_training_job(est.latest_training_job or "")
    assert job.OutputDataConfig is not None
    assert job.OutputDataConfig.S3OutputPath.startswith(f"s3://{tenants.a.bucket}/")
    assert est.source_uri is not None and est.source_uri.startswith(f"s3://{tenants.a.bucket}/")
