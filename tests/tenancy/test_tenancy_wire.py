"""Two accounts through boto3's SageMaker and STS clients (SigV4 on the AWS gateway): another
account's resources answer exactly as absent ones, lists and searches hold only one's own, a
name another account holds is the ResourceInUse of a duplicate, and STS names the caller's
own account."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.tenancy.conftest import (
    Tenants,
    endpoint_config,
    model,
    put_source,
    training_job,
    transform_job,
    tuning_job,
)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:botocore")


@pytest.fixture
def made(tenants: Tenants) -> dict[str, str]:
    put_source(tenants, tenants.a.account)
    sm = tenants.a.sagemaker
    sm.create_model(**model("wa-model"))
    sm.create_endpoint_config(**endpoint_config("wa-cfg", "wa-model"))
    sm.create_endpoint(EndpointName="wa-ep", EndpointConfigName="wa-cfg")
    sm.create_training_job(**training_job("wa-job", bucket=tenants.a.bucket))
    sm.create_hyper_parameter_tuning_job(**tuning_job("wa-tune", bucket=tenants.a.bucket))
    sm.create_transform_job(**transform_job("wa-tx", "wa-model", bucket=tenants.a.bucket))
    return {"model": "wa-model", "cfg": "wa-cfg", "ep": "wa-ep", "job": "wa-job",
            "tune": "wa-tune", "tx": "wa-tx"}  # fmt: skip


def refusal(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as e:
        call()
    r = e.value.response
    return r["ResponseMetadata"]["HTTPStatusCode"], r["Error"]["Code"], r["Error"]["Message"]


def same(other: Callable[[str], Any], name: str, missing: str) -> None:
    """The call on another account's ``name`` fails exactly as on the absent ``missing``."""
    s1, c1, m1 = refusal(lambda: other(name))
    s2, c2, m2 = refusal(lambda: other(missing))
    assert (s1, c1, m1.replace(name, "N")) == (s2, c2, m2.replace(missing, "N"))


CALLS: dict[str, list[tuple[str, str]]] = {
    # key of ``made`` -> (operation, its name parameter)
    "job": [("describe_training_job", "TrainingJobName"), ("stop_training_job", "TrainingJobName"),
            ("delete_training_job", "TrainingJobName")],
    "model": [("describe_model", "ModelName"), ("delete_model", "ModelName")],
    "cfg": [("describe_endpoint_config", "EndpointConfigName"),
            ("delete_endpoint_config", "EndpointConfigName")],
    "ep": [("describe_endpoint", "EndpointName"), ("delete_endpoint", "EndpointName")],
    "tune": [("describe_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
             ("stop_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
             ("delete_hyper_parameter_tuning_job", "HyperParameterTuningJobName"),
             ("list_training_jobs_for_hyper_parameter_tuning_job",
              "HyperParameterTuningJobName")],
    "tx": [("describe_transform_job", "TransformJobName"),
           ("stop_transform_job", "TransformJobName")],
}  # fmt: skip


@pytest.mark.parametrize("which", list(CALLS))
def test_another_account_s_resource_is_absent_on_the_wire(
    tenants: Tenants, made: dict[str, str], which: str
) -> None:
    b = tenants.b.sagemaker
    for operation, param in CALLS[which]:
        op = getattr(b, operation)
        same(lambda n, op=op, param=param: op(**{param: n}), made[which], "zz-absent")
    # Its owner still has it.
    owner = getattr(tenants.a.sagemaker, CALLS[which][0][0])
    described = owner(**{CALLS[which][0][1]: made[which]})
    arns = [v for k, v in described.items() if k.endswith("Arn") and "sagemaker" in str(v)]
    assert arns and all(f":{tenants.a.account}:" in a for a in arns), described


def test_updates_and_tags_of_another_account_s_endpoint_are_absent(
    tenants: Tenants, made: dict[str, str]
) -> None:
    b = tenants.b.sagemaker
    b.create_model(**model("wb-model"))
    b.create_endpoint_config(**endpoint_config("wb-cfg", "wb-model"))
    same(lambda n: b.update_endpoint(EndpointName=n, EndpointConfigName="wb-cfg"), "wa-ep", "zz")
    same(
        lambda n: b.update_endpoint_weights_and_capacities(
            EndpointName=n, DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredWeight": 1}]
        ),
        "wa-ep", "zz",
    )  # fmt: skip
    arn = tenants.a.sagemaker.describe_endpoint(EndpointName="wa-ep")["EndpointArn"]
    absent = arn.replace("wa-ep", "zz-ep")
    tags = [{"Key": "k", "Value": "v"}]
    same(lambda a: b.add_tags(ResourceArn=a, Tags=tags), arn, absent)
    same(lambda a: b.list_tags(ResourceArn=a), arn, absent)
    same(lambda a: b.delete_tags(ResourceArn=a, TagKeys=["k"]), arn, absent)


def test_lists_and_search_hold_only_one_s_own_on_the_wire(
    tenants: Tenants, made: dict[str, str]
) -> None:
    a, b = tenants.a.sagemaker, tenants.b.sagemaker
    lists = {
        "list_training_jobs": ("TrainingJobSummaries", "TrainingJobName", "wa-job"),
        "list_models": ("Models", "ModelName", "wa-model"),
        "list_endpoint_configs": ("EndpointConfigs", "EndpointConfigName", "wa-cfg"),
        "list_endpoints": ("Endpoints", "EndpointName", "wa-ep"),
        "list_hyper_parameter_tuning_jobs": (
            "HyperParameterTuningJobSummaries", "HyperParameterTuningJobName", "wa-tune"),
        "list_transform_jobs": ("TransformJobSummaries", "TransformJobName", "wa-tx"),
    }  # fmt: skip
    for operation, (field, key, name) in lists.items():
        assert name in [x[key] for x in getattr(a, operation)()[field]], operation
        assert getattr(b, operation)()[field] == [], operation
    assert [r["TrainingJob"]["TrainingJobName"] for r in a.search(Resource="TrainingJob")[
        "Results"]] == ["wa-job"]  # fmt: skip
    assert b.search(Resource="TrainingJob").get("Results", []) == []


def test_a_name_another_account_holds_is_refused_as_a_duplicate(
    tenants: Tenants, made: dict[str, str]
) -> None:
    b = tenants.b.sagemaker
    b.create_model(**model("wb-model"))
    tagged = {"Tags": [{"Key": "x", "Value": "1"}]}
    s1, c1, m1 = refusal(lambda: b.create_model(**model("wa-model"), **tagged))
    s2, c2, m2 = refusal(lambda: b.create_model(**model("wb-model"), **tagged))
    assert (s1, c1, m1.replace("wa-model", "N")) == (s2, c2, m2.replace("wb-model", "N"))
    assert s1 == 400  # SageMaker's answer to an existing model's name


def test_sts_names_the_caller_s_account(tenants: Tenants) -> None:
    a = tenants.a.boto("sts").get_caller_identity()
    b = tenants.b.boto("sts").get_caller_identity()
    assert a["Account"] == tenants.a.account and b["Account"] == tenants.b.account
    assert a["Arn"] == f"arn:aws:iam::{tenants.a.account}:user/{tenants.a.admin}"
    assert tenants.a.account != tenants.b.account


def test_a_tuning_job_s_trials_are_its_account_s(tenants: Tenants, made: dict[str, str]) -> None:
    tenants.local.controller.run_pass()
    a, b = tenants.a.sagemaker, tenants.b.sagemaker
    trials = a.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="wa-tune"
    )["TrainingJobSummaries"]
    assert trials, "the pass launched no trial"
    for trial in trials:
        assert f":{tenants.a.account}:" in trial["TrainingJobArn"]
        a.describe_training_job(TrainingJobName=trial["TrainingJobName"])
        same(lambda n: b.describe_training_job(TrainingJobName=n), trial["TrainingJobName"], "zz")
    names = {t["TrainingJobName"] for t in trials}
    assert names <= {j["TrainingJobName"] for j in a.list_training_jobs()["TrainingJobSummaries"]}
