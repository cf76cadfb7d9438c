"""Models, endpoint configs and endpoints through boto3, every exchange checked against
botocore's model: the SDK's ``deploy()`` sequence, the waiters, SageMaker's words for what is
missing or in use, UpdateEndpoint and UpdateEndpointWeightsAndCapacities."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from tests.aws.conftest import AwsPlane

ARN = "arn:aws:sagemaker:us-east-1:000000000000"
ROLE = "arn:aws:iam::111122223333:role/x"
IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/serve:1"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
FAST = {"Delay": 1, "MaxAttempts": 5}


def error(e: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = e.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


@pytest.fixture
def plane(aws_plane: AwsPlane) -> AwsPlane:
    aws_plane.local.plane.objects.put_bytes("s3://bucket/out/model.tar.gz", b"model")
    return aws_plane


def deploy(
    sm: Any, name: str, *, variants: list[dict[str, Any]] | None = None, image: str = IMAGE
) -> None:
    """What the SDK's ``deploy()`` sends (the wire report's capture)."""
    sm.create_model(
        ModelName=name, ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "Environment": {}, "ModelDataUrl": "s3://bucket/out/model.tar.gz"},
    )  # fmt: skip
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=variants
        or [{"VariantName": "AllTraffic", "ModelName": name, "InitialVariantWeight": 1,
             "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}],
    )  # fmt: skip
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name, Tags=[])


def settle(plane: AwsPlane, passes: int = 2) -> None:
    for _ in range(passes):
        plane.local.controller.run_pass()


def test_deploy_then_in_service_then_delete_as_the_waiters_expect(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    deploy(sagemaker, "web")
    d = sagemaker.describe_endpoint(EndpointName="web")
    assert (d["EndpointStatus"], d["EndpointArn"]) == ("Creating", f"{ARN}:endpoint/web")
    settle(plane)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="web", WaiterConfig=FAST)
    d = sagemaker.describe_endpoint(EndpointName="web")
    assert d["EndpointConfigName"] == "web"
    assert d["ProductionVariants"] == [
        {"VariantName": "AllTraffic", "CurrentWeight": 1.0, "DesiredWeight": 1.0,
         "CurrentInstanceCount": 1, "DesiredInstanceCount": 1},
    ]  # fmt: skip
    raw = wire.last("DescribeEndpoint").response
    assert not {"Routes", "Conditions", "VariantScaling", "AuthMode", "ReplicaGeneration"} & set(
        raw
    )
    config = sagemaker.describe_endpoint_config(EndpointConfigName="web")
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.large"
    model = sagemaker.describe_model(ModelName="web")
    assert model["PrimaryContainer"]["Image"] == IMAGE and model["ModelArn"] == f"{ARN}:model/web"
    # predictor.delete_endpoint(): the config, then the endpoint; delete_model() the model.
    sagemaker.delete_endpoint_config(EndpointConfigName="web")
    sagemaker.delete_endpoint(EndpointName="web")
    assert sagemaker.describe_endpoint(EndpointName="web")["EndpointStatus"] == "Deleting"
    settle(plane)
    sagemaker.get_waiter("endpoint_deleted").wait(EndpointName="web", WaiterConfig=FAST)
    sagemaker.delete_model(ModelName="web")


def test_the_in_service_waiter_fails_on_a_failed_endpoint(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    deploy(sagemaker, "sick")
    backend = plane.local.backend
    backend.auto_ready = False
    for _ in range(4):  # every replica dies before it serves
        plane.local.controller.run_pass()
        for rid in list(backend.replicas.get("sick", {})):
            backend.set_replica_state("sick", rid, "dead", "exit code 1")
    plane.local.controller.run_pass()
    with pytest.raises(WaiterError) as e:
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="sick", WaiterConfig=FAST)
    assert "Failed" in str(e.value)
    assert (
        "replicas failed in a row"
        in sagemaker.describe_endpoint(EndpointName="sick")["FailureReason"]
    )


@pytest.mark.parametrize(
    ("call", "member", "words"),
    [
        ("describe_model", "ModelName", 'Could not find model "{arn}:model/nope".'),
        ("delete_model", "ModelName", 'Could not find model "{arn}:model/nope".'),
        ("describe_endpoint_config", "EndpointConfigName",
         'Could not find endpoint configuration "{arn}:endpoint-config/nope".'),
        ("delete_endpoint_config", "EndpointConfigName",
         'Could not find endpoint configuration "{arn}:endpoint-config/nope".'),
        ("describe_endpoint", "EndpointName", 'Could not find endpoint "{arn}:endpoint/nope".'),
        ("delete_endpoint", "EndpointName", 'Could not find endpoint "{arn}:endpoint/nope".'),
    ],
)  # fmt: skip
def test_what_is_missing_is_said_in_sagemaker_s_words(
    sagemaker: Any, wire: Any, call: str, member: str, words: str
) -> None:
    with pytest.raises(ClientError) as e:
        getattr(sagemaker, call)(**{member: "nope"})
    assert error(e) == ("ValidationException", words.format(arn=ARN))


def test_the_deleted_waiter_succeeds_on_a_missing_endpoint(sagemaker: Any, wire: Any) -> None:
    sagemaker.get_waiter("endpoint_deleted").wait(EndpointName="never", WaiterConfig=FAST)
    with pytest.raises(WaiterError):
        sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="never", WaiterConfig=FAST)


def test_a_name_in_use_cannot_be_created_again(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    """The SDK's create_model reads this ValidationException as "use the existing one"."""
    deploy(sagemaker, "twice")
    with pytest.raises(ClientError) as e:
        sagemaker.create_model(ModelName="twice", PrimaryContainer={"Image": IMAGE})
    assert error(e) == ("ValidationException", f'Cannot create already existing model "{ARN}:model/twice".')  # fmt: skip
    with pytest.raises(ClientError) as e:
        sagemaker.create_endpoint_config(
            EndpointConfigName="twice",
            ProductionVariants=[{"VariantName": "v", "ModelName": "twice"}],
        )
    assert error(e) == (
        "ValidationException",
        f'Cannot create already existing endpoint configuration "{ARN}:endpoint-config/twice".',
    )
    with pytest.raises(ClientError) as e:
        sagemaker.create_endpoint(EndpointName="twice", EndpointConfigName="twice", Tags=[])
    assert error(e) == ("ValidationException", f'Cannot create already existing endpoint "{ARN}:endpoint/twice".')  # fmt: skip


def test_references_and_refusals_name_the_field(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.create_endpoint_config(
            EndpointConfigName="c", ProductionVariants=[{"VariantName": "v", "ModelName": "ghost"}]
        )
    assert "ProductionVariants[0].ModelName" in error(e)[1]
    with pytest.raises(ClientError) as e:
        sagemaker.create_endpoint(EndpointName="e", EndpointConfigName="ghost")
    assert error(e)[1].startswith("EndpointConfigName:")
    sagemaker.create_model(ModelName="m", PrimaryContainer={"Image": IMAGE})
    with pytest.raises(ClientError) as e:
        sagemaker.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "v", "ModelName": "m", "VolumeSizeInGB": 4}],
        )
    code, message = error(e)
    assert code == "ValidationException"
    assert message.startswith("ProductionVariants[0].VolumeSizeInGB: a SageMaker field this server")
    with pytest.raises(ClientError) as e:
        sagemaker.create_model(
            ModelName="m2",
            PrimaryContainer={"Image": IMAGE},
            VpcConfig={"SecurityGroupIds": ["s"], "Subnets": ["n"]},
        )
    assert error(e)[1].startswith("VpcConfig: a SageMaker field this server does not support")


def test_sagemaker_s_serving_images_are_served_on_the_process_backend(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    plane.local.plane.backend_name = "process"
    env = {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": "s3://bucket/out/model.tar.gz",
           "SAGEMAKER_CONTAINER_LOG_LEVEL": "20", "SAGEMAKER_REGION": "us-east-1"}  # fmt: skip
    sagemaker.create_model(
        ModelName="skl", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": SKLEARN, "Environment": env, "ModelDataUrl": "s3://bucket/out/model.tar.gz"},
    )  # fmt: skip
    with pytest.raises(ClientError) as e:
        sagemaker.create_model(ModelName="own", PrimaryContainer={"Image": IMAGE})
    assert error(e)[1].startswith("PrimaryContainer.Image: a host process runs no container image")


def test_update_endpoint_is_blue_green_and_only_from_in_service(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    deploy(sagemaker, "blue")
    with pytest.raises(ClientError) as e:  # still Creating
        sagemaker.update_endpoint(EndpointName="blue", EndpointConfigName="blue")
    assert error(e)[1].startswith(f'Cannot update in-progress endpoint "{ARN}:endpoint/blue".')
    settle(plane)
    sagemaker.create_endpoint_config(
        EndpointConfigName="green",
        ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "blue", "InitialInstanceCount": 2}],
    )  # fmt: skip
    with pytest.raises(ClientError) as e:
        sagemaker.update_endpoint(
            EndpointName="blue", EndpointConfigName="green", RetainAllVariantProperties=True
        )
    assert error(e)[1].startswith("RetainAllVariantProperties:")
    sagemaker.update_endpoint(
        EndpointName="blue", EndpointConfigName="green", RetainAllVariantProperties=False
    )
    plane.local.controller.run_pass()
    d = sagemaker.describe_endpoint(EndpointName="blue")
    assert d["EndpointStatus"] == "Updating"
    assert d["EndpointConfigName"] == "blue"  # the one serving until the update ends
    assert d["PendingDeploymentSummary"]["EndpointConfigName"] == "green"
    settle(plane, 4)
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="blue", WaiterConfig=FAST)
    d = sagemaker.describe_endpoint(EndpointName="blue")
    assert d["EndpointConfigName"] == "green" and "PendingDeploymentSummary" not in d
    assert d["ProductionVariants"][0]["CurrentInstanceCount"] == 2


def test_weights_and_capacities_change_in_place(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    variants = [
        {
            "VariantName": "a",
            "ModelName": "ab",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 1,
        },
        {
            "VariantName": "b",
            "ModelName": "ab",
            "InitialInstanceCount": 1,
            "InitialVariantWeight": 1,
        },
    ]
    deploy(sagemaker, "ab", variants=variants)
    settle(plane)
    arn = sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="ab",
        DesiredWeightsAndCapacities=[
            {"VariantName": "a", "DesiredWeight": 3, "DesiredInstanceCount": 2}
        ],
    )["EndpointArn"]
    assert arn == f"{ARN}:endpoint/ab"
    assert sagemaker.describe_endpoint(EndpointName="ab")["EndpointStatus"] == "Updating"
    plane.local.backend.auto_ready = False
    plane.local.controller.run_pass()
    d = sagemaker.describe_endpoint(EndpointName="ab")
    summary = {v["VariantName"]: v for v in d["ProductionVariants"]}
    assert d["EndpointStatus"] == "Updating"
    assert (summary["a"]["DesiredInstanceCount"], summary["a"]["CurrentInstanceCount"]) == (2, 1)
    assert (summary["a"]["DesiredWeight"], summary["b"]["DesiredWeight"]) == (3.0, 1.0)
    backend = plane.local.backend
    for rid in backend.replicas["ab"]:
        backend.set_replica_state("ab", rid, "ready")
    plane.local.controller.run_pass()
    sagemaker.get_waiter("endpoint_in_service").wait(EndpointName="ab", WaiterConfig=FAST)
    summary = {v["VariantName"]: v for v in sagemaker.describe_endpoint(EndpointName="ab")["ProductionVariants"]}  # fmt: skip
    assert summary["a"]["CurrentInstanceCount"] == 2 and summary["a"]["CurrentWeight"] == 3.0
    route = plane.local.plane.routes.get("ab")
    assert route is not None
    assert {v.name: v.weight for v in route.variants} == {"a": 0.75, "b": 0.25}
    # A second call keeps what the first asked of the other fields; the config is unchanged.
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="ab", DesiredWeightsAndCapacities=[{"VariantName": "a", "DesiredWeight": 1}]
    )
    settle(plane)
    summary = {v["VariantName"]: v for v in sagemaker.describe_endpoint(EndpointName="ab")["ProductionVariants"]}  # fmt: skip
    assert (summary["a"]["DesiredWeight"], summary["a"]["DesiredInstanceCount"]) == (1.0, 2)
    config = sagemaker.describe_endpoint_config(EndpointConfigName="ab")
    assert [v["InitialInstanceCount"] for v in config["ProductionVariants"]] == [1, 1]


@pytest.mark.parametrize(
    ("desired", "named"),
    [
        ([{"VariantName": "zz", "DesiredWeight": 1}], "DesiredWeightsAndCapacities[0].VariantName"),
        ([{"VariantName": "AllTraffic", "DesiredInstanceCount": 0}],
         "DesiredWeightsAndCapacities[0].DesiredInstanceCount"),
        ([{"VariantName": "AllTraffic", "DesiredWeight": 0}], "DesiredWeightsAndCapacities"),
        ([{"VariantName": "AllTraffic"}], "DesiredWeightsAndCapacities[0]"),
        ([{"VariantName": "AllTraffic", "ServerlessUpdateConfig": {"MaxConcurrency": 2}}],
         "DesiredWeightsAndCapacities[0].ServerlessUpdateConfig"),
    ],
    ids=["unknown variant", "zero instances", "no weight left", "nothing asked", "serverless"],
)  # fmt: skip
def test_weights_and_capacities_refusals_name_the_field(
    plane: AwsPlane, sagemaker: Any, wire: Any, desired: list[dict[str, Any]], named: str
) -> None:
    deploy(sagemaker, "one")
    settle(plane)
    with pytest.raises(ClientError) as e:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName="one", DesiredWeightsAndCapacities=desired
        )
    code, message = error(e)
    assert code == "ValidationException" and message.startswith(named), message
    assert sagemaker.describe_endpoint(EndpointName="one")["EndpointStatus"] == "InService"


def test_weights_and_capacities_need_an_in_service_endpoint(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    deploy(sagemaker, "new")
    with pytest.raises(ClientError) as e:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName="new",
            DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredWeight": 2}],
        )
    assert error(e)[1].startswith(f'Cannot update in-progress endpoint "{ARN}:endpoint/new".')
    with pytest.raises(ClientError) as e:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName="ghost",
            DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredWeight": 2}],
        )
    assert error(e) == ("ValidationException", f'Could not find endpoint "{ARN}:endpoint/ghost".')


def test_an_autoscaled_variant_takes_the_count_within_its_bounds(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    variants = [{"VariantName": "v", "ModelName": "auto", "InitialInstanceCount": 1,
                 "ManagedInstanceScaling": {"Status": "ENABLED", "MinInstanceCount": 1, "MaxInstanceCount": 3}}]  # fmt: skip
    deploy(sagemaker, "auto", variants=variants)
    settle(plane)
    with pytest.raises(ClientError) as e:
        sagemaker.update_endpoint_weights_and_capacities(
            EndpointName="auto",
            DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredInstanceCount": 5}],
        )
    assert "outside variant 'v''s ManagedInstanceScaling bounds [1, 3]" in error(e)[1]
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="auto",
        DesiredWeightsAndCapacities=[{"VariantName": "v", "DesiredInstanceCount": 3}],
    )
    settle(plane)
    variant = sagemaker.describe_endpoint(EndpointName="auto")["ProductionVariants"][0]
    assert (variant["DesiredInstanceCount"], variant["CurrentInstanceCount"]) == (3, 3)


def test_lists_of_models_configs_and_endpoints(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    for name in ("m-b", "m-a"):
        deploy(sagemaker, name)
        plane.local.plane.clock.advance(5)
    settle(plane)
    assert [m["ModelName"] for m in sagemaker.list_models()["Models"]] == [
        "m-a",
        "m-b",
    ]  # newest first
    assert [m["ModelName"] for m in sagemaker.list_models(SortBy="Name", SortOrder="Ascending")["Models"]] == ["m-a", "m-b"]  # fmt: skip
    assert [c["EndpointConfigName"] for c in sagemaker.list_endpoint_configs(NameContains="-b")["EndpointConfigs"]] == ["m-b"]  # fmt: skip
    endpoints = sagemaker.list_endpoints(StatusEquals="InService", SortBy="Status")["Endpoints"]
    assert {e["EndpointName"] for e in endpoints} == {"m-a", "m-b"}
    with pytest.raises(ClientError) as e:
        sagemaker.list_models(SortBy="Status")
    assert error(e)[1].startswith("SortBy must be one of CreationTime, Name for Models")


def test_weights_asked_of_a_config_do_not_come_back_with_it(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    """A -> (weights) -> B -> A: the weights asked of A's fleet lapse with it; served again, A
    has its own config's counts."""
    deploy(sagemaker, "a")
    settle(plane)
    sagemaker.create_endpoint_config(
        EndpointConfigName="b", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "a"}]
    )
    sagemaker.update_endpoint_weights_and_capacities(
        EndpointName="a", DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 2}]
    )  # fmt: skip
    settle(plane)
    store = plane.local.plane.store
    for target, kept in (("b", "a"), ("a", None)):
        sagemaker.update_endpoint(EndpointName="a", EndpointConfigName=target)
        overrides = store.get("Endpoint", "a").spec.get("VariantOverrides")
        assert (overrides or {}).get("EndpointConfigName") == kept
        settle(plane, 5)
        assert sagemaker.describe_endpoint(EndpointName="a")["EndpointConfigName"] == target
    variant = sagemaker.describe_endpoint(EndpointName="a")["ProductionVariants"][0]
    assert variant["DesiredInstanceCount"] == 1
