"""One account's resources through the REST API, seen from another account: every call on
them answers exactly as for an absent name, lists and searches hold only one's own, and a
create of another account's name is the same conflict as a duplicate of one's own."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.tenancy.conftest import (
    Tenant,
    Tenants,
    endpoint_config,
    model,
    put_source,
    training_job,
    transform_job,
    tuning_job,
)

API = "/api/v1"
# kind -> (collection, whether it stops)
KINDS = {
    "TrainingJob": ("training-jobs", True),
    "Model": ("models", False),
    "EndpointConfig": ("endpoint-configs", False),
    "Endpoint": ("endpoints", False),
    "HyperParameterTuningJob": ("hyper-parameter-tuning-jobs", True),
    "TransformJob": ("transform-jobs", True),
}
SLUGS = {
    "TrainingJob": "training-job", "Model": "model", "EndpointConfig": "endpoint-config",
    "Endpoint": "endpoint", "HyperParameterTuningJob": "hyper-parameter-tuning-job",
    "TransformJob": "transform-job",
}  # fmt: skip


def ok(r: httpx.Response) -> Any:
    assert r.status_code < 300, r.text
    return r.json()


def make_all(t: Tenant, prefix: str) -> dict[str, str]:
    """One resource of every kind, made by ``t``; kind -> name."""
    names = {k: f"{prefix}-{SLUGS[k]}" for k in KINDS}
    h = t.http
    ok(h.post(f"{API}/models", json=model(names["Model"])))
    ok(h.post(f"{API}/endpoint-configs",
              json=endpoint_config(names["EndpointConfig"], names["Model"])))  # fmt: skip
    ok(h.post(f"{API}/endpoints", json={"EndpointName": names["Endpoint"],
                                        "EndpointConfigName": names["EndpointConfig"]}))  # fmt: skip
    ok(h.post(f"{API}/training-jobs", json=training_job(names["TrainingJob"], bucket=t.bucket)))
    ok(h.post(f"{API}/hyper-parameter-tuning-jobs",
              json=tuning_job(names["HyperParameterTuningJob"], bucket=t.bucket)))  # fmt: skip
    ok(
        h.post(
            f"{API}/transform-jobs",
            json=transform_job(names["TransformJob"], names["Model"], bucket=t.bucket),
        )
    )
    return names


@pytest.fixture
def made(tenants: Tenants) -> dict[str, str]:
    put_source(tenants, tenants.a.account)
    put_source(tenants, tenants.b.account)
    return make_all(tenants.a, "a")


def same_answer(other: httpx.Response, absent: httpx.Response, name: str, missing: str) -> None:
    """Another account's resource and an absent one: the same status, the same body but for
    the name."""
    assert other.status_code == absent.status_code == 404, (other.text, absent.text)
    assert other.text.replace(name, "NAME") == absent.text.replace(missing, "NAME")


@pytest.mark.parametrize("kind", list(KINDS))
def test_another_account_s_resource_answers_as_an_absent_one(
    tenants: Tenants, made: dict[str, str], kind: str
) -> None:
    b, name, missing = tenants.b.http, made[kind], f"zz-{SLUGS[kind]}"
    path, stops = KINDS[kind]
    # The owner sees it, with an ARN of its own account.
    arn_field = f"{kind}Arn"
    described = ok(tenants.a.http.get(f"{API}/{path}/{name}"))
    assert f":{tenants.a.account}:" in described[arn_field]
    same_answer(b.get(f"{API}/{path}/{name}"), b.get(f"{API}/{path}/{missing}"), name, missing)
    if stops:
        same_answer(
            b.post(f"{API}/{path}/{name}/stop"), b.post(f"{API}/{path}/{missing}/stop"), name,
            missing,
        )  # fmt: skip
    same_answer(
        b.delete(f"{API}/{path}/{name}"), b.delete(f"{API}/{path}/{missing}"), name, missing
    )
    # Still there, untouched, for its owner.
    assert ok(tenants.a.http.get(f"{API}/{path}/{name}"))[arn_field] == described[arn_field]


def test_an_update_of_another_account_s_endpoint_answers_as_for_an_absent_one(
    tenants: Tenants, made: dict[str, str]
) -> None:
    b = tenants.b.http
    ok(b.post(f"{API}/models", json=model("b-model")))
    ok(b.post(f"{API}/endpoint-configs", json=endpoint_config("b-cfg", "b-model")))
    body = {"EndpointConfigName": "b-cfg"}
    same_answer(
        b.patch(f"{API}/endpoints/{made['Endpoint']}", json=body),
        b.patch(f"{API}/endpoints/zz-endpoint", json=body), made["Endpoint"], "zz-endpoint",
    )  # fmt: skip
    caps = {"DesiredWeightsAndCapacities": [{"VariantName": "v", "DesiredInstanceCount": 2}]}
    same_answer(
        b.post(f"{API}/endpoints/{made['Endpoint']}/weights-and-capacities", json=caps),
        b.post(f"{API}/endpoints/zz-endpoint/weights-and-capacities", json=caps),
        made["Endpoint"], "zz-endpoint",
    )  # fmt: skip
    described = ok(tenants.a.http.get(f"{API}/endpoints/{made['Endpoint']}"))
    assert described["EndpointConfigName"] == made["EndpointConfig"]


@pytest.mark.parametrize("kind", list(KINDS))
def test_lists_and_searches_hold_only_one_s_own(
    tenants: Tenants, made: dict[str, str], kind: str
) -> None:
    path, _ = KINDS[kind]
    field = {"HyperParameterTuningJob": "HyperParameterTuningJobSummaries"}.get(
        kind, f"{kind}s" if kind != "TrainingJob" else "TrainingJobSummaries"
    )
    listed_a = ok(tenants.a.http.get(f"{API}/{path}"))
    listed_b = ok(tenants.b.http.get(f"{API}/{path}"))
    names_a = [str(v) for item in _items(listed_a) for k, v in item.items() if k.endswith("Name")]
    assert made[kind] in names_a, listed_a
    assert _items(listed_b) == [], (field, listed_b)
    # The server's own account's administrator: neither account's resources.
    assert made[kind] not in tenants.root._http.get(f"{API}/{path}").text


def _items(listed: dict[str, Any]) -> list[dict[str, Any]]:
    lists = [v for v in listed.values() if isinstance(v, list)]
    assert len(lists) == 1, listed
    return lists[0]


@pytest.mark.parametrize("kind", ["TrainingJob", "HyperParameterTuningJob"])
def test_search_holds_only_one_s_own(tenants: Tenants, made: dict[str, str], kind: str) -> None:
    body = {"Resource": kind}
    found_a = ok(tenants.a.http.post(f"{API}/search", json=body))["Results"]
    found_b = ok(tenants.b.http.post(f"{API}/search", json=body))["Results"]
    assert [r[kind][f"{kind}Name"] for r in found_a] == [made[kind]]
    assert found_b == []
    by_name = {"Resource": kind, "SearchExpression": {"Filters": [
        {"Name": f"{kind}Name", "Operator": "Equals", "Value": made[kind]}]}}  # fmt: skip
    assert ok(tenants.b.http.post(f"{API}/search", json=by_name))["Results"] == []


def test_tags_of_another_account_s_resource_answer_as_an_absent_one(
    tenants: Tenants, made: dict[str, str]
) -> None:
    a, b = tenants.a.http, tenants.b.http
    arn = ok(a.get(f"{API}/models/{made['Model']}"))["ModelArn"]
    absent = arn.replace(made["Model"], "zz-model")
    # The same ARN with B's account id names B's own (absent) model.
    as_b = arn.replace(tenants.a.account, tenants.b.account)
    tags = [{"Key": "k", "Value": "v"}]
    for target in (arn, as_b):
        same_answer(
            b.post(f"{API}/tags", json={"ResourceArn": target, "Tags": tags}),
            b.post(f"{API}/tags", json={"ResourceArn": absent, "Tags": tags}),
            target, absent,
        )  # fmt: skip
        same_answer(
            b.get(f"{API}/tags", params={"ResourceArn": target}),
            b.get(f"{API}/tags", params={"ResourceArn": absent}), target, absent,
        )  # fmt: skip
        same_answer(
            b.post(f"{API}/tags/delete", json={"ResourceArn": target, "TagKeys": ["k"]}),
            b.post(f"{API}/tags/delete", json={"ResourceArn": absent, "TagKeys": ["k"]}),
            target, absent,
        )  # fmt: skip
    ok(a.post(f"{API}/tags", json={"ResourceArn": arn, "Tags": tags}))
    assert {"Key": "k", "Value": "v"} in ok(a.get(f"{API}/tags", params={"ResourceArn": arn}))[
        "Tags"
    ]


def test_a_create_of_another_account_s_name_is_the_conflict_of_a_duplicate(
    tenants: Tenants, made: dict[str, str]
) -> None:
    b = tenants.b.http
    ok(b.post(f"{API}/models", json=model("b-own")))
    other = b.post(
        f"{API}/models", json={**model(made["Model"]), "Tags": [{"Key": "x", "Value": "1"}]}
    )
    duplicate = b.post(
        f"{API}/models", json={**model("b-own"), "Tags": [{"Key": "x", "Value": "1"}]}
    )
    assert other.status_code == duplicate.status_code == 409, (other.text, duplicate.text)
    assert other.text.replace(made["Model"], "N") == duplicate.text.replace("b-own", "N")
    job = b.post(
        f"{API}/training-jobs", json=training_job(made["TrainingJob"], bucket=tenants.b.bucket)
    )
    assert job.status_code == 409, job.text
    # A's model is A's still.
    assert ok(tenants.a.http.get(f"{API}/models/{made['Model']}"))["ModelName"] == made["Model"]
