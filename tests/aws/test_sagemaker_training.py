"""Training jobs through boto3's ``sagemaker`` client, every exchange checked against botocore's
model (the ``wire`` fixture): creates, describes, lists, stops, deletes, the waiter, SageMaker's
words for a missing job and a name in use, the SDK's default fields, SageMaker's images."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError

from orchestrator.training.contract import builtin_algorithm
from tests.aws.conftest import AwsPlane

LINEAR = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
ROLE = "arn:aws:iam::111122223333:role/x"
FAST = {"Delay": 1, "MaxAttempts": 5}


def error(e: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    err = e.value.response["Error"]
    return str(err["Code"]), str(err["Message"])


def job_request(name: str, **fields: Any) -> dict[str, Any]:
    """What the SDK's ``Estimator.fit()`` sends by default (the wire report's capture)."""
    doc: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": LINEAR},
        "HyperParameters": {"predictor_type": "regressor"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix", "S3Uri": "s3://bucket/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://bucket/prefix"},
        "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.m5.large"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "DebugHookConfig": {"S3OutputPath": "s3://bucket/prefix", "CollectionConfigurations": []},
        "ProfilerConfig": {"S3OutputPath": "s3://bucket/prefix", "DisableProfiler": False},
    }  # fmt: skip
    doc.update(fields)
    return doc


@pytest.fixture
def plane(aws_plane: AwsPlane) -> AwsPlane:
    aws_plane.local.plane.objects.put_bytes("s3://bucket/train/data.csv", b"1,2\n3,4\n")
    return aws_plane


def test_the_sdk_s_default_request_runs_the_builtin_and_describes_as_sagemaker_does(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    local = plane.local
    created = local.plane.clock.now()
    arn = sagemaker.create_training_job(**job_request("ll-1"))["TrainingJobArn"]
    assert arn == "arn:aws:sagemaker:us-east-1:000000000000:training-job/ll-1"
    local.controller.run_pass()
    launch = local.backend.launches[-1]
    assert builtin_algorithm(launch.spec) == "linear-learner"  # not an image to pull
    local.plane.clock.advance(90)
    local.backend.complete("ll-1", artifact="s3://bucket/prefix/ll-1/output/model.tar.gz")
    local.controller.run_pass()
    sagemaker.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="ll-1", WaiterConfig=FAST
    )
    d = sagemaker.describe_training_job(TrainingJobName="ll-1")
    assert (d["TrainingJobStatus"], d["SecondaryStatus"]) == ("Completed", "Completed")
    assert d["ModelArtifacts"]["S3ModelArtifacts"] == "s3://bucket/prefix/ll-1/output/model.tar.gz"
    assert d["AlgorithmSpecification"]["TrainingImage"] == LINEAR  # as it was asked
    assert d["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}  # fmt: skip
    # Timestamps as botocore parses them: aware datetimes, at the server's clock.
    assert d["CreationTime"] == created and d["CreationTime"].tzinfo is not None
    assert d["TrainingEndTime"] - created == timedelta(seconds=90)
    assert d["LastModifiedTime"] >= d["CreationTime"]
    assert [t["Status"] for t in d["SecondaryStatusTransitions"]][-1] == "Completed"
    # The project's own bookkeeping stays off the wire.
    raw = wire.last("DescribeTrainingJob").response
    assert not {"Conditions", "Attempt", "AllocatedGpus", "Tags"} & set(raw)


def test_an_in_progress_job_names_where_its_model_will_be(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    sagemaker.create_training_job(**job_request("ll-2"))
    d = sagemaker.describe_training_job(TrainingJobName="ll-2")
    assert d["TrainingJobStatus"] == "InProgress"
    assert d["ModelArtifacts"] == {
        "S3ModelArtifacts": "s3://bucket/prefix/ll-2/output/model.tar.gz"
    }


def test_a_failed_job_fails_the_waiter_with_its_reason(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    local = plane.local
    sagemaker.create_training_job(**job_request("bad"))
    local.controller.run_pass()
    local.backend.fail("bad", "loss went to NaN")
    local.controller.run_pass()
    with pytest.raises(WaiterError) as e:
        sagemaker.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="bad", WaiterConfig=FAST
        )
    assert "Failed" in str(e.value)
    d = sagemaker.describe_training_job(TrainingJobName="bad")
    assert d["FailureReason"] == "AlgorithmError: loss went to NaN"


def test_stop_then_the_waiter_ends_on_stopped(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    local = plane.local
    sagemaker.create_training_job(**job_request("halt"))
    local.controller.run_pass()
    sagemaker.stop_training_job(TrainingJobName="halt")
    for _ in range(3):
        local.controller.run_pass()
    sagemaker.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="halt", WaiterConfig=FAST
    )
    assert sagemaker.describe_training_job(TrainingJobName="halt")["TrainingJobStatus"] == "Stopped"


def test_a_missing_job_is_sagemaker_s_validation_exception(sagemaker: Any, wire: Any) -> None:
    for call in (sagemaker.describe_training_job, sagemaker.stop_training_job,
                 sagemaker.delete_training_job):  # fmt: skip
        with pytest.raises(ClientError) as e:
            call(TrainingJobName="nope")
        assert error(e) == ("ValidationException", "Requested resource not found.")
    # The waiter depends on it: a missing job is a failure, at once.
    with pytest.raises(WaiterError) as w:
        sagemaker.get_waiter("training_job_completed_or_stopped").wait(
            TrainingJobName="nope", WaiterConfig=FAST
        )
    assert "ValidationException" in str(w.value)


def test_a_name_in_use_is_resource_in_use_even_with_the_same_spec(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    sagemaker.create_training_job(**job_request("dup"))
    for again in (job_request("dup"), job_request("dup", HyperParameters={"predictor_type": "binary_classifier"})):  # fmt: skip
        with pytest.raises(ClientError) as e:
            sagemaker.create_training_job(**again)
        code, message = error(e)
        assert code == "ResourceInUse"
        assert (
            "already exists (arn:aws:sagemaker:us-east-1:000000000000:training-job/dup)" in message
        )


def test_delete_needs_an_ended_job(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    local = plane.local
    sagemaker.create_training_job(**job_request("gone"))
    local.controller.run_pass()
    with pytest.raises(ClientError) as e:
        sagemaker.delete_training_job(TrainingJobName="gone")
    assert error(e)[0] == "ResourceInUse"
    local.backend.complete("gone")
    local.controller.run_pass()
    sagemaker.delete_training_job(TrainingJobName="gone")
    local.controller.run_pass()
    with pytest.raises(ClientError) as e:
        sagemaker.describe_training_job(TrainingJobName="gone")
    assert error(e) == ("ValidationException", "Requested resource not found.")


def test_jobs_beyond_the_slots_wait_and_the_queue_limit_is_resource_limit_exceeded(
    tmp_path: Any, wire: Any, sagemaker: Any, plane: AwsPlane
) -> None:
    plane.local.plane.settings.controller.max_queued_training_jobs = 1
    sagemaker.create_training_job(**job_request("first"))  # queued: one of one
    with pytest.raises(ClientError) as e:
        sagemaker.create_training_job(**job_request("second"))
    code, message = error(e)
    assert code == "ResourceLimitExceeded" and "MAX_QUEUED_TRAINING_JOBS" in message
    plane.local.controller.run_pass()  # first launches: the queue is empty again
    sagemaker.create_training_job(**job_request("second"))


def test_priority_is_read_from_its_tag(
    tmp_path: Any, wire: Any, sagemaker: Any, plane: AwsPlane
) -> None:
    tag = [{"Key": "orchestrator:priority", "Value": "7"}]
    sagemaker.create_training_job(**job_request("urgent"), Tags=tag)
    assert plane.local.client.describe_training_job("urgent").Priority == 7
    for bad in ("high", "1.5", "5000"):
        with pytest.raises(ClientError) as e:
            sagemaker.create_training_job(
                **job_request(f"bad-{len(bad)}"),
                Tags=[{"Key": "orchestrator:priority", "Value": bad}],
            )
        code, message = error(e)
        assert code == "ValidationException" and message.startswith("Priority: the tag")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"DebugHookConfig": {"S3OutputPath": "s3://b/p", "CollectionConfigurations": [{"CollectionName": "losses"}]}},
         "DebugHookConfig"),
        ({"ProfilerConfig": {"S3OutputPath": "s3://b/p", "ProfilingIntervalInMilliseconds": 500}},
         "ProfilerConfig.ProfilingIntervalInMilliseconds"),
        ({"VpcConfig": {"SecurityGroupIds": ["sg-1"], "Subnets": ["subnet-1"]}}, "VpcConfig"),
        ({"DebugRuleConfigurations": [{"RuleConfigurationName": "r", "RuleEvaluatorImage": "i"}]},
         "DebugRuleConfigurations"),
        ({"EnableManagedSpotTraining": True,
          "StoppingCondition": {"MaxRuntimeInSeconds": 100, "MaxWaitTimeInSeconds": 50}},
         "StoppingCondition.MaxWaitTimeInSeconds"),
        ({"AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": SKLEARN}},
         "AlgorithmSpecification.TrainingImage"),
        ({"AlgorithmSpecification": {"TrainingInputMode": "Pipe", "TrainingImage": LINEAR}},
         "AlgorithmSpecification.TrainingInputMode"),
        ({"HyperParameters": {"predictor_type": "regressor", "epochs": "0"}}, "epochs"),
    ],
    ids=["debug collections", "profiling interval", "vpc", "debug rules", "spot wait below runtime",
         "sklearn without script mode", "pipe mode", "bad hyperparameter"],
)  # fmt: skip
def test_what_cannot_be_honoured_is_refused_naming_the_field(
    plane: AwsPlane, sagemaker: Any, wire: Any, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.create_training_job(**job_request("refused", **fields))
    code, message = error(e)
    assert code == "ValidationException" and named in message, message
    assert plane.local.plane.store.find("TrainingJob", "refused") is None


def test_a_sagemaker_field_not_supported_says_so(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.create_training_job(
            **job_request("x", TensorBoardOutputConfig={"S3OutputPath": "s3://b/tb"})
        )
    _, message = error(e)
    assert message.startswith(
        "TensorBoardOutputConfig: a SageMaker field this server does not support"
    )
    assert "docs/sagemaker-compat.md" in message


def test_a_member_sagemaker_does_not_have_is_refused_on_the_wire(plane: AwsPlane) -> None:
    """botocore refuses such a member before sending; a raw client gets this."""
    from tests.aws.raw import call

    status, body = call(plane, "CreateTrainingJob", {**job_request("raw"), "AuthMode": "None"})
    assert status == 400 and body["__type"] == "ValidationException"
    assert body["Message"] == "AuthMode: not a member of SageMaker's CreateTrainingJob request"


def test_framework_image_runs_in_script_mode(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    """The SDK's SKLearn estimator: its image and JSON-encoded script-mode hyperparameters."""
    local = plane.local
    local.plane.objects.put_bytes("s3://bucket/src/sourcedir.tar.gz", b"not read by the fake")
    hps = {"alpha": "0.5", "sagemaker_program": '"train.py"',
           "sagemaker_submit_directory": '"s3://bucket/src/sourcedir.tar.gz"',
           "sagemaker_container_log_level": "20", "sagemaker_region": '"us-east-1"'}  # fmt: skip
    request = job_request(
        "skl", HyperParameters=hps,
        AlgorithmSpecification={"TrainingInputMode": "File", "TrainingImage": SKLEARN},
    )  # fmt: skip
    sagemaker.create_training_job(**request)
    local.controller.run_pass()
    spec = local.backend.launches[-1].spec
    assert spec.AlgorithmSpecification.own_image is None  # the project's training image runs it
    assert builtin_algorithm(spec) is None


def test_on_the_process_backend_an_image_of_your_own_is_refused(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    plane.local.plane.backend_name = "process"
    own = "111122223333.dkr.ecr.us-east-1.amazonaws.com/mine:1"
    with pytest.raises(ClientError) as e:
        sagemaker.create_training_job(
            **job_request(
                "own", AlgorithmSpecification={"TrainingInputMode": "File", "TrainingImage": own}
            )
        )
    code, message = error(e)
    assert code == "ValidationException"
    assert message.startswith(
        "AlgorithmSpecification.TrainingImage: a host process runs no container"
    )
    sagemaker.create_training_job(**job_request("stood-in"))  # SageMaker's image: fine


def test_lists_take_sagemaker_s_parameters(plane: AwsPlane, sagemaker: Any, wire: Any) -> None:
    local = plane.local
    for name in ("charlie", "alpha", "bravo"):
        sagemaker.create_training_job(**job_request(name))
        local.plane.clock.advance(10)
    local.controller.run_pass()
    local.controller.run_pass()  # started: their statuses settle
    local.plane.clock.advance(10)
    local.backend.complete("alpha")
    local.controller.run_pass()  # only alpha's status changes

    def names(**params: Any) -> list[str]:
        return [j["TrainingJobName"] for j in sagemaker.list_training_jobs(**params)["TrainingJobSummaries"]]  # fmt: skip

    assert names() == ["charlie", "alpha", "bravo"]  # SageMaker's default: ascending creation
    assert names(SortOrder="Descending") == ["bravo", "alpha", "charlie"]
    assert names(SortBy="Name") == ["alpha", "bravo", "charlie"]
    assert names(SortBy="Status", SortOrder="Ascending") == ["alpha", "charlie", "bravo"]
    assert names(StatusEquals="Completed") == ["alpha"]
    assert names(NameContains="LPH") == ["alpha"]
    start = local.plane.clock.now() - timedelta(seconds=40)
    assert names(CreationTimeAfter=start + timedelta(seconds=5)) == ["alpha", "bravo"]
    assert names(LastModifiedTimeAfter=local.plane.clock.now() - timedelta(seconds=1)) == ["alpha"]
    first = sagemaker.list_training_jobs(MaxResults=2, SortBy="Name")
    assert [j["TrainingJobName"] for j in first["TrainingJobSummaries"]] == ["alpha", "bravo"]
    rest = sagemaker.list_training_jobs(MaxResults=2, SortBy="Name", NextToken=first["NextToken"])
    assert [j["TrainingJobName"] for j in rest["TrainingJobSummaries"]] == ["charlie"]
    assert "NextToken" not in rest
    paginated = sagemaker.get_paginator("list_training_jobs").paginate(
        PaginationConfig={"PageSize": 1}
    )
    assert [j["TrainingJobName"] for page in paginated for j in page["TrainingJobSummaries"]] == [
        "charlie", "alpha", "bravo",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"WarmPoolStatusEquals": "Available"}, "WarmPoolStatusEquals"),
        ({"StatusEquals": "Sleeping"}, "StatusEquals"),
        ({"SortBy": "Size"}, "SortBy"),
        ({"SortOrder": "Sideways"}, "SortOrder"),
        ({"NextToken": "bm90IG91cnM="}, "NextToken"),
    ],
)
def test_a_list_parameter_that_cannot_be_honoured_is_refused(
    sagemaker: Any, wire: Any, params: dict[str, Any], named: str
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.list_training_jobs(**params)
    code, message = error(e)
    assert code == "ValidationException" and named in message, message


def test_spot_fields_and_retryable_exit_codes_travel_on_the_wire(
    plane: AwsPlane, sagemaker: Any
) -> None:
    tags = [{"Key": "orchestrator:retryable-exit-codes", "Value": "3, 137-143"}]
    sagemaker.create_training_job(
        **job_request(
            "spot-1",
            EnableManagedSpotTraining=True,
            RetryStrategy={"MaximumRetryAttempts": 2},
            StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
            Tags=tags,
        )
    )
    spec = plane.local.plane.describe_training_job("spot-1")
    assert spec.RetryStrategy is not None
    assert spec.RetryStrategy.RetryableExitCodes == ["3", "137-143"]
    d = sagemaker.describe_training_job(TrainingJobName="spot-1")
    assert d["EnableManagedSpotTraining"] is True
    assert d["StoppingCondition"]["MaxWaitTimeInSeconds"] == 1200
    assert d["RetryStrategy"] == {"MaximumRetryAttempts": 2}  # SageMaker's members only


@pytest.mark.parametrize(
    ("fields", "needle"),
    [
        ({"RetryStrategy": {"MaximumRetryAttempts": 1},
          "Tags": [{"Key": "orchestrator:retryable-exit-codes", "Value": "3,abc"}]},
         "RetryStrategy.RetryableExitCodes[1]"),
        ({"Tags": [{"Key": "orchestrator:retryable-exit-codes", "Value": "3"}]},
         "needs RetryStrategy"),
    ],
    ids=["bad entry", "no retry strategy"],
)  # fmt: skip
def test_a_bad_retryable_exit_codes_tag_is_refused_naming_it(
    plane: AwsPlane, sagemaker: Any, fields: dict[str, Any], needle: str
) -> None:
    with pytest.raises(ClientError) as e:
        sagemaker.create_training_job(**job_request("bad-tag", **fields))
    code, message = error(e)
    assert code == "ValidationException" and "Tags[0].Value" in message and needle in message


def test_a_preempted_spot_job_describes_its_billable_time_on_the_wire(
    plane: AwsPlane, sagemaker: Any, wire: Any
) -> None:
    """BillableTimeInSeconds is the attempts' run time (60 s + 30 s), not the job's span
    (the 50 s in the queue after the preemption included); the attempts and
    PreemptionCount are ours and stay off the wire, the Interrupted transition is SageMaker's."""
    local = plane.local
    clock = local.plane.clock
    sagemaker.create_training_job(
        **job_request(
            "spot-2",
            EnableManagedSpotTraining=True,
            StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
            CheckpointConfig={"S3Uri": "s3://bucket/ckpt"},
        )
    )
    local.controller.run_pass()
    clock.advance(60)
    local.plane.preempt_training_job("spot-2")
    local.controller.run_pass()  # SIGTERM; the fake honours it: the attempt has exited
    local.controller.run_pass()  # recorded Preempted, back in the queue
    clock.advance(50)
    local.controller.run_pass()  # relaunched
    assert [launch.attempt for launch in local.backend.launches] == [1, 2]
    clock.advance(30)
    local.backend.complete("spot-2")
    local.controller.run_pass()
    d = sagemaker.describe_training_job(TrainingJobName="spot-2")
    assert d["TrainingJobStatus"] == "Completed"
    assert d["EnableManagedSpotTraining"] is True
    assert d["CheckpointConfig"] == {
        "S3Uri": "s3://bucket/ckpt",
        "LocalPath": "/opt/ml/checkpoints",
    }
    assert d["StoppingCondition"]["MaxWaitTimeInSeconds"] == 1200
    assert d["TrainingTimeInSeconds"] == 140
    assert d["BillableTimeInSeconds"] == 90
    statuses = [t["Status"] for t in d["SecondaryStatusTransitions"]]
    assert "Interrupted" in statuses and statuses[-1] == "Completed", statuses
    raw = wire.last("DescribeTrainingJob").response
    assert not {"Attempts", "PreemptionCount", "NextAttemptTime"} & set(raw)
