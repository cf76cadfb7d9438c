"""The curated public API is pinned: adding or removing a name is a deliberate change."""

from __future__ import annotations

import importlib

import orchestrator
from orchestrator import errors


def test_top_level_names_are_pinned() -> None:
    assert orchestrator.__all__ == [
        "AuthenticationError",
        "CategoricalParameter",
        "Client",
        "ConflictError",
        "ContinuousParameter",
        "Estimator",
        "HyperparameterTuner",
        "IntegerParameter",
        "InvokeResult",
        "JobFailedError",
        "ModelError",
        "NotFoundError",
        "OrchestratorError",
        "PayloadTooLargeError",
        "PermanentError",
        "Predictor",
        "Settings",
        "TemporaryError",
        "Transformer",
        "UnavailableError",
        "ValidationError",
        "__version__",
        "get_settings",
    ]
    for name in orchestrator.__all__:
        assert getattr(orchestrator, name) is not None


def test_testing_helpers_are_pinned() -> None:
    testing = importlib.import_module("orchestrator.testing")
    assert testing.__all__ == [
        "FakeBackend",
        "FakeClock",
        "FakeGpus",
        "LocalControlPlane",
        "ServerThread",
        "endpoint_config_spec",
        "eventually",
        "eventually_async",
        "local_control_plane",
        "model_spec",
        "tarball",
        "training_job_spec",
        "transform_job_spec",
    ]


def test_every_error_round_trips_through_its_payload() -> None:
    for cls in errors._ALL:
        err = cls("boom", field="X")
        back = errors.OrchestratorError.from_payload(cls.status_code, err.to_payload())
        assert type(back) is cls and back.message == "boom" and back.field == "X"
        assert issubclass(cls, errors.PermanentError) != issubclass(cls, errors.TemporaryError)


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        orchestrator.NoSuchThing  # type: ignore[attr-defined]  # noqa: B018
    except AttributeError as e:
        assert "NoSuchThing" in str(e)
    else:
        raise AssertionError("expected AttributeError")
