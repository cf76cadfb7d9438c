"""SageMaker's image names: the built-in algorithms' and scikit-learn's images run the project's
own, on every backend, and every other image is the user's (refused where no container runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.algorithms.hyperparameters import ALGORITHMS
from orchestrator.controller.plan.support import problems_of
from orchestrator.controller.plan.types import JobLaunch, VariantFleet
from orchestrator.errors import ValidationError
from orchestrator.kube.fleets import fleet_objects
from orchestrator.kube.jobs import training_job_manifest
from orchestrator.kube.objects import KubeSettings
from orchestrator.resources import parse_spec
from orchestrator.resources.endpoints import ProductionVariant
from orchestrator.resources.images import BUILTIN_ALGORITHMS, REGISTRIES, own_image, stand_in
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.settings import Settings
from orchestrator.training.contract import builtin_algorithm, check_builtin_algorithm

LINEAR = "382416733822.dkr.ecr.us-east-1.amazonaws.com/linear-learner:1"
SKLEARN = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
OWN = "111122223333.dkr.ecr.us-east-1.amazonaws.com/my-algo:latest"
SCRIPT = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://b/src.tar.gz"'}


def job(image: str, **fields: Any) -> CreateTrainingJobRequest:
    doc: dict[str, Any] = {
        "TrainingJobName": "j",
        "AlgorithmSpecification": {"TrainingImage": image},
        "HyperParameters": {"predictor_type": "regressor"},
    }
    doc.update(fields)
    return parse_spec(CreateTrainingJobRequest, doc)


def test_the_builtins_are_the_algorithms_package_s() -> None:
    assert BUILTIN_ALGORITHMS == ALGORITHMS


def _sdk_config(name: str) -> dict[str, Any]:
    sagemaker = pytest.importorskip("sagemaker", reason="the SDK is in the [dev] extra")
    path = Path(sagemaker.__file__).parent / "image_uri_config" / f"{name}.json"
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def test_the_registry_accounts_are_the_sdk_s() -> None:
    linear = _sdk_config("linear-learner")["versions"]["1"]["registries"]
    sklearn_doc = _sdk_config("sklearn")
    sklearn = {
        json.dumps(v["registries"], sort_keys=True)
        for scope in sklearn_doc.values()
        for v in scope["versions"].values()
    }
    assert len(sklearn) == 1  # one account per region for every version and scope
    assert {r: a[0] for r, a in REGISTRIES.items()} == linear
    assert {r: a[1] for r, a in REGISTRIES.items()} == json.loads(sklearn.pop())


def test_every_region_s_sdk_image_uri_is_stood_in_for() -> None:
    image_uris = pytest.importorskip("sagemaker.image_uris")
    for region in ("us-east-1", "us-west-2", "eu-west-1", "cn-north-1", "ap-south-2"):
        uri = image_uris.retrieve("linear-learner", region)
        found = stand_in(uri)
        assert found is not None and (found.kind, found.name) == ("builtin", "linear-learner")
        for scope in ("training", "inference"):
            uri = image_uris.retrieve(
                "sklearn", region, version="1.2-1", py_version="py3", image_scope=scope
            )
            found = stand_in(uri)
            assert found is not None and found.name == "scikit-learn", uri


@pytest.mark.parametrize(
    ("image", "meaning"),
    [
        (LINEAR, ("builtin", "linear-learner")),
        (LINEAR.replace(":1", ":latest"), ("builtin", "linear-learner")),
        ("linear-learner", ("builtin", "linear-learner")),
        ("mlp", ("builtin", "mlp")),
        (SKLEARN, ("framework", "scikit-learn")),
        (SKLEARN.replace("1.2-1", "0.23-1"), ("framework", "scikit-learn")),
        (SKLEARN.replace("1.2-1-cpu", "1.0-1-arm64-cpu"), ("framework", "scikit-learn")),
        # Another account's repository of the same name is that account's own image.
        (LINEAR.replace("382416733822", "111122223333"), None),
        # SageMaker's account of another region, a tag SageMaker does not publish.
        (LINEAR.replace("382416733822", "174872318107"), None),
        (LINEAR.replace(":1", ":2"), None),
        (SKLEARN.replace("-cpu-py3", "-gpu-py3"), None),
        (OWN, None),
        ("registry.example/algo:1", None),
    ],
)
def test_stand_ins(image: str, meaning: tuple[str, str] | None) -> None:
    found = stand_in(image)
    assert (None if found is None else (found.kind, found.name)) == meaning
    assert own_image(image) == (image if meaning is None else None)


def test_a_builtin_image_runs_the_builtin_and_its_hyperparameters_are_checked() -> None:
    assert builtin_algorithm(job(LINEAR)) == "linear-learner"
    assert builtin_algorithm(job("mlp")) == "mlp"
    assert builtin_algorithm(job(OWN)) is None
    with pytest.raises(ValidationError, match="predictor_type"):
        check_builtin_algorithm(job(LINEAR, HyperParameters={}))


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"AlgorithmSpecification": {"TrainingImage": SKLEARN}}, "sagemaker_program"),
        (
            {"AlgorithmSpecification": {"TrainingImage": LINEAR, "ContainerEntrypoint": ["x"]}},
            "AlgorithmSpecification.ContainerEntrypoint",
        ),
        (
            {"AlgorithmSpecification": {"TrainingImage": LINEAR, "AlgorithmName": "mlp"}},
            "AlgorithmSpecification.AlgorithmName",
        ),
    ],
)
def test_what_a_stood_in_image_needs_is_said(fields: dict[str, Any], named: str) -> None:
    with pytest.raises(ValidationError) as e:
        job(LINEAR, **fields)
    assert named in e.value.message and "TrainingImage" in e.value.message


def test_on_the_process_backend_only_own_images_are_refused() -> None:
    assert problems_of("TrainingJob", job(LINEAR), "process", set()) == []
    assert problems_of("TrainingJob", job(SKLEARN, HyperParameters=SCRIPT), "process", set()) == []
    refused = problems_of("TrainingJob", job(OWN), "process", set())
    assert [p.field for p in refused] == ["AlgorithmSpecification.TrainingImage"]
    assert problems_of("TrainingJob", job(OWN), "docker", set()) == []

    def model(image: str) -> CreateModelRequest:
        return CreateModelRequest.model_validate(
            {"ModelName": "m", "PrimaryContainer": {"Image": image}}
        )

    assert problems_of("Model", model(SKLEARN), "process", set()) == []
    assert problems_of("Model", model(LINEAR), "process", set()) == []
    assert [p.field for p in problems_of("Model", model(OWN), "process", set())] == [
        "PrimaryContainer.Image"
    ]


def _kube_user_container(spec: CreateTrainingJobRequest) -> dict[str, Any]:
    s = KubeSettings(training_image="reg/training:1", algorithms_image="reg/algorithms:1")
    manifest = training_job_manifest(
        "j", "ml", 1, spec, output_uri="s3://b/o", owner=None, settings=s
    )
    containers = manifest["spec"]["template"]["spec"]["containers"]
    found: dict[str, Any] = next(c for c in containers if c["image"] != s.serving_image)
    return found


def test_the_container_backends_run_the_project_s_images_for_sagemaker_s() -> None:
    from orchestrator.backends.docker.jobs import job_container_run

    settings = Settings(home=Path("/nonexistent"))
    cases = [
        (job(LINEAR), settings.docker.algorithms_image, "reg/algorithms:1"),
        (job(SKLEARN, HyperParameters=SCRIPT), settings.docker.training_image, "reg/training:1"),
        (job(OWN), OWN, OWN),
    ]
    for spec, docker_image, kube_image in cases:
        run = job_container_run(settings, JobLaunch("j", 1, spec, "s3://b/o"), "1000:1000")
        assert run.image == docker_image
        container = _kube_user_container(spec)
        assert container["image"] == kube_image
    # The project's images start the command through kube.hostenv (it samples the usage).
    hostenv = ["python", "-m", "orchestrator.kube.hostenv", "--"]
    script = _kube_user_container(job(SKLEARN, HyperParameters=SCRIPT))
    assert script["command"][:6] == [*hostenv, "python", "/opt/ml/code/train.py"]
    builtin = _kube_user_container(job(LINEAR))
    assert builtin["command"] == [*hostenv, "python", "-m", "orchestrator.algorithms.train"]
    assert {"name": "ORCH_ALGORITHM", "value": "linear-learner"} in builtin["env"]


def test_a_sagemaker_serving_image_is_served_by_the_serving_image_on_kubernetes() -> None:
    s = KubeSettings(serving_image="reg/serving:1")
    variant = ProductionVariant(VariantName="v", ModelName="m")

    def serve(image: str) -> dict[str, Any]:
        model = CreateModelRequest.model_validate(
            {
                "ModelName": "m",
                "PrimaryContainer": {
                    "Image": image,
                    "ModelDataUrl": "s3://b/model.tar.gz",
                    "Environment": {
                        "SAGEMAKER_PROGRAM": "inference.py",
                        "SAGEMAKER_SUBMIT_DIRECTORY": "s3://b/sourcedir.tar.gz",
                    },
                },
            }
        )
        objects = fleet_objects(
            "ep", "ml", VariantFleet("cfg", variant, model, 1), owner=None, settings=s
        )
        deployment = next(o for o in objects if o["kind"] == "Deployment")
        containers = deployment["spec"]["template"]["spec"]["containers"]
        found: dict[str, Any] = next(c for c in containers if c["name"] == "serve")
        return found

    stood_in = serve(SKLEARN)
    assert stood_in["image"] == "reg/serving:1"
    assert stood_in["args"][stood_in["args"].index("--program") + 1] == "inference.py"
    assert serve(OWN)["image"] == OWN and serve(OWN)["args"] == ["serve"]
