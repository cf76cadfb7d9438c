"""SageMaker code, unchanged, against a real control plane (process backend): boto3's
sagemaker, sagemaker-runtime and s3 clients, and the SageMaker Python SDK's Estimator and
SKLearn estimator, with nothing but ``AWS_ENDPOINT_URL`` and an access key set."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

from tests.e2e.conftest import RunningServer

boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra")
pytestmark = pytest.mark.slow

LINEAR_LEARNER = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
ROLE = "arn:aws:iam::000000000000:role/orchestrator"
WAIT = {"Delay": 1, "MaxAttempts": 240}


@pytest.fixture
def aws_env(server: RunningServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningServer]:
    """The environment a SageMaker user sets: the endpoint URL, an access key, a region."""
    made = server.client().create_access_key("e2e", role="admin")
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", made.AccessKeyId)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", made.SecretAccessKey)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    # boto3.client() uses a module-wide session that keeps the credentials it first resolved:
    # each test starts a new one, so that it signs with this server's key.
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    yield server


def _csv(rows: np.ndarray) -> bytes:
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",", fmt="%.6g")
    return buf.getvalue().encode()


def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x, y = load_breast_cancer(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    return x_tr, x_te, y_tr, y_te


def test_boto3_trains_deploys_invokes_and_deletes(aws_env: RunningServer) -> None:
    pytest.importorskip(
        "tensorflow", reason="the built-in algorithms need orchestrator[tensorflow]"
    )
    s3 = boto3.client("s3")
    sm = boto3.client("sagemaker")
    runtime = boto3.client("sagemaker-runtime")
    x_tr, x_te, y_tr, y_te = _split()
    s3.create_bucket(Bucket="data")
    s3.put_object(Bucket="data", Key="train/train.csv", Body=_csv(np.column_stack([y_tr, x_tr])))

    sm.create_training_job(
        TrainingJobName="wire-ll",
        AlgorithmSpecification={"TrainingImage": LINEAR_LEARNER, "TrainingInputMode": "File"},
        RoleArn=ROLE,
        HyperParameters={"predictor_type": "binary_classifier", "epochs": "20", "seed": "1"},
        InputDataConfig=[
            {
                "ChannelName": "train",
                "ContentType": "text/csv",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://data/train",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
        ],
        OutputDataConfig={"S3OutputPath": "s3://data/output"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600},
    )
    sm.get_waiter("training_job_completed_or_stopped").wait(
        TrainingJobName="wire-ll", WaiterConfig=WAIT
    )
    job = sm.describe_training_job(TrainingJobName="wire-ll")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    artifact = job["ModelArtifacts"]["S3ModelArtifacts"]
    assert artifact.startswith("s3://data/output/wire-ll/")
    # The artifact is an object of the same store, reachable through the S3 API.
    assert s3.head_object(Bucket="data", Key=artifact[len("s3://data/") :])["ContentLength"] > 0

    sm.create_model(
        ModelName="wire-ll",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": LINEAR_LEARNER, "ModelDataUrl": artifact},
    )
    sm.create_endpoint_config(
        EndpointConfigName="wire-ll",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "wire-ll",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "InitialVariantWeight": 1.0,
            }
        ],
    )
    sm.create_endpoint(EndpointName="wire-ll", EndpointConfigName="wire-ll")
    sm.get_waiter("endpoint_in_service").wait(EndpointName="wire-ll", WaiterConfig=WAIT)

    answer = runtime.invoke_endpoint(
        EndpointName="wire-ll", ContentType="text/csv", Accept="application/json",
        Body=_csv(x_te[:20]),
    )  # fmt: skip
    assert answer["InvokedProductionVariant"] == "AllTraffic"
    predictions = json.loads(answer["Body"].read())["predictions"]
    labels = np.array([p["predicted_label"] for p in predictions])
    assert len(labels) == 20 and np.mean(labels == y_te[:20]) >= 0.85
    as_json = runtime.invoke_endpoint(
        EndpointName="wire-ll", ContentType="application/json",
        Body=json.dumps({"instances": x_te[:3].tolist()}),
    )  # fmt: skip
    assert len(json.loads(as_json["Body"].read())["predictions"]) == 3

    sm.delete_endpoint(EndpointName="wire-ll")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="wire-ll", WaiterConfig=WAIT)
    sm.delete_endpoint_config(EndpointConfigName="wire-ll")
    sm.delete_model(ModelName="wire-ll")
    assert sm.list_endpoints()["Endpoints"] == []


def _sdk_session(bucket: str) -> Any:
    sagemaker = pytest.importorskip("sagemaker", reason="the SageMaker SDK is in the [dev] extra")
    from sagemaker.session import Session

    del sagemaker
    return Session(
        boto_session=boto3.Session(),
        default_bucket=bucket,
        sagemaker_config={
            "SchemaVersion": "1.0",
            "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}},
        },
    )


def test_sdk_estimator_fits_with_its_log_deploys_and_predicts(
    aws_env: RunningServer, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip(
        "tensorflow", reason="the built-in algorithms need orchestrator[tensorflow]"
    )
    sess = _sdk_session("sdk")
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.estimator import Estimator
    from sagemaker.serializers import CSVSerializer

    x_tr, x_te, y_tr, y_te = _split()
    assert sess.default_bucket() == "sdk"  # ListBuckets, HeadBucket, CreateBucket
    train = sess.upload_string_as_file_body(
        _csv(np.column_stack([y_tr, x_tr])).decode(), bucket="sdk", key="train/train.csv"
    )
    assert train == "s3://sdk/train/train.csv"
    est = Estimator(
        image_uri=LINEAR_LEARNER,
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path="s3://sdk/out",
        hyperparameters={"predictor_type": "binary_classifier", "epochs": 20, "seed": 1},
        sagemaker_session=sess,
    )
    est.fit({"train": "s3://sdk/train"}, job_name="sdk-ll", wait=False)
    sess.logs_for_job("sdk-ll", wait=True, poll=1)
    printed = capsys.readouterr().out
    assert "Completed - Training job completed" in printed, printed
    assert "test:accuracy" in printed or "epoch" in printed.lower(), printed
    assert est.model_data.startswith("s3://sdk/out/sdk-ll/")

    predictor = est.deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name="sdk-ll",
        serializer=CSVSerializer(), deserializer=JSONDeserializer(), wait=False,
    )  # fmt: skip
    sess.wait_for_endpoint("sdk-ll", poll=1)
    answer = predictor.predict(x_te[:10])
    labels = np.array([p["predicted_label"] for p in answer["predictions"]])
    assert np.mean(labels == y_te[:10]) >= 0.8
    predictor.delete_model()
    predictor.delete_endpoint()
    sm = boto3.client("sagemaker")
    sm.get_waiter("endpoint_deleted").wait(EndpointName="sdk-ll", WaiterConfig=WAIT)
    assert sm.list_models()["Models"] == []


TRAIN_PY = """
import argparse, os, pickle
import numpy as np
from sklearn.linear_model import LogisticRegression

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--C", type=float, default=1.0)
    args, _ = parser.parse_known_args()
    data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
    model = LogisticRegression(C=args.C, max_iter=5000).fit(data[:, 1:], data[:, 0])
    print(f"train accuracy {model.score(data[:, 1:], data[:, 0]):.3f}")
    with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.pkl"), "wb") as f:
        pickle.dump(model, f)


def model_fn(model_dir):
    with open(os.path.join(model_dir, "model.pkl"), "rb") as f:
        return pickle.load(f)
"""


def test_sdk_sklearn_runs_in_script_mode(
    aws_env: RunningServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sess = _sdk_session("skl")
    from sagemaker.deserializers import CSVDeserializer
    from sagemaker.serializers import CSVSerializer
    from sagemaker.sklearn import SKLearn

    x_tr, x_te, y_tr, y_te = _split()
    assert sess.default_bucket() == "skl"
    sess.upload_string_as_file_body(
        _csv(np.column_stack([y_tr, x_tr])).decode(), bucket="skl", key="train/train.csv"
    )
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text(TRAIN_PY)
    est = SKLearn(
        entry_point="train.py",
        source_dir=str(src),
        framework_version="1.2-1",
        py_version="py3",
        role=ROLE,
        instance_count=1,
        instance_type="ml.m5.large",
        output_path="s3://skl/out",
        hyperparameters={"C": 0.5},
        sagemaker_session=sess,
    )
    est.fit({"train": "s3://skl/train"}, job_name="skl-job", wait=False)
    sess.logs_for_job("skl-job", wait=True, poll=1)
    printed = capsys.readouterr().out
    assert "train accuracy" in printed, printed

    predictor = est.deploy(
        initial_instance_count=1, instance_type="ml.m5.large", endpoint_name="skl-ep",
        serializer=CSVSerializer(), deserializer=CSVDeserializer(), wait=False,
    )  # fmt: skip
    sess.wait_for_endpoint("skl-ep", poll=1)
    rows = predictor.predict(x_te[:20])
    labels = np.array([float(v) for row in rows for v in row])
    assert labels.shape == (20,) and set(labels) <= {0.0, 1.0}
    assert np.mean(labels == y_te[:20]) >= 0.85
    predictor.delete_endpoint()
