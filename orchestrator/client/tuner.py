"""``HyperparameterTuner``: the SageMaker Python SDK's shape over ``Client``'s tuning jobs.

``HyperparameterTuner(estimator, "validation:accuracy", {"lr": ContinuousParameter(1e-4, 1e-1,
scaling_type="Logarithmic")}, max_jobs=20, max_parallel_jobs=4).fit({"train": ...})`` builds
the tuning job's TrainingJobDefinition from the ``Estimator`` the way ``Estimator.fit`` builds
a training job (the script's directory packed and uploaded once, for every trial), creates the
tuning job and waits for it; ``best_training_job()`` names the best trial.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from orchestrator.client.client import Client
from orchestrator.client.estimator import Estimator
from orchestrator.errors import JobFailedError, ValidationError
from orchestrator.resources.tuning import (
    DescribeHyperParameterTuningJobResponse,
    HyperParameterTrainingJobSummary,
    TuningJobStatus,
)

Scaling = Literal["Auto", "Linear", "Logarithmic", "ReverseLogarithmic"]
_DEFINITION_FIELDS = (
    "AlgorithmSpecification",
    "RoleArn",
    "InputDataConfig",
    "OutputDataConfig",
    "ResourceConfig",
    "StoppingCondition",
    "CheckpointConfig",
    "RetryStrategy",
    "Environment",
)


@dataclass(frozen=True)
class _NumericParameter:
    min_value: float
    max_value: float
    scaling_type: Scaling = "Auto"

    def as_range(self, name: str) -> dict[str, str]:
        return {
            "Name": name,
            "MinValue": str(self.min_value),
            "MaxValue": str(self.max_value),
            "ScalingType": self.scaling_type,
        }


@dataclass(frozen=True)
class ContinuousParameter(_NumericParameter):
    pass


@dataclass(frozen=True)
class IntegerParameter(_NumericParameter):
    min_value: int
    max_value: int


class CategoricalParameter:
    def __init__(self, values: Sequence[Any] | Any) -> None:
        items = list(values) if isinstance(values, list | tuple) else [values]
        self.values = [v if isinstance(v, str) else str(v) for v in items]

    def as_range(self, name: str) -> dict[str, Any]:
        return {"Name": name, "Values": list(self.values)}

    def __repr__(self) -> str:
        return f"CategoricalParameter({self.values!r})"


Parameter = ContinuousParameter | IntegerParameter | CategoricalParameter


def tuning_job_name(base: str) -> str:
    """``base-YYmmdd-HHMMSS-mmm`` in SageMaker's 32 characters for a tuning job."""
    stem = "".join(c if c.isalnum() or c == "-" else "-" for c in base).strip("-") or "tuning"
    now = time.time()
    stamp = time.strftime("%y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    stem = stem[: 31 - len(stamp)].rstrip("-") or "t"
    return f"{stem}-{stamp}"


def parameter_ranges(ranges: Mapping[str, Parameter]) -> dict[str, list[dict[str, Any]]]:
    """SageMaker's ParameterRanges from ``{name: ContinuousParameter(...), ...}``."""
    out: dict[str, list[dict[str, Any]]] = {
        "IntegerParameterRanges": [],
        "ContinuousParameterRanges": [],
        "CategoricalParameterRanges": [],
    }
    for name, p in ranges.items():
        if isinstance(p, IntegerParameter):
            out["IntegerParameterRanges"].append(p.as_range(name))
        elif isinstance(p, ContinuousParameter):
            out["ContinuousParameterRanges"].append(p.as_range(name))
        elif isinstance(p, CategoricalParameter):
            out["CategoricalParameterRanges"].append(p.as_range(name))
        else:
            raise ValidationError(
                f"hyperparameter_ranges[{name!r}]: {p!r} is not a ContinuousParameter, "
                "IntegerParameter or CategoricalParameter",
                field="hyperparameter_ranges",
            )
    return out


class HyperparameterTuner:
    """A tuning job over an ``Estimator``'s training job (SageMaker SDK's names)."""

    def __init__(
        self,
        estimator: Estimator,
        objective_metric_name: str,
        hyperparameter_ranges: Mapping[str, Parameter],
        *,
        metric_definitions: list[dict[str, str]] | None = None,
        strategy: Literal["Bayesian", "Random", "Hyperband", "Grid"] = "Bayesian",
        objective_type: Literal["Maximize", "Minimize"] = "Maximize",
        max_jobs: int | None = None,
        max_parallel_jobs: int = 1,
        max_runtime_in_seconds: int | None = None,
        early_stopping_type: Literal["Off", "Auto"] = "Off",
        base_tuning_job_name: str | None = None,
        random_seed: int | None = None,
        completion_criteria: Mapping[str, Any] | None = None,
        strategy_config: Mapping[str, Any] | None = None,
        warm_start_config: Mapping[str, Any] | None = None,
        tags: list[dict[str, str]] | None = None,
    ) -> None:
        if not hyperparameter_ranges:
            raise ValidationError(
                "hyperparameter_ranges: give at least one range to tune",
                field="hyperparameter_ranges",
            )
        if strategy != "Grid" and max_jobs is None:
            max_jobs = 1  # the SDK's default
        self.estimator = estimator
        self.objective_metric_name = objective_metric_name
        self.hyperparameter_ranges = dict(hyperparameter_ranges)
        self.metric_definitions = metric_definitions
        self.strategy = strategy
        self.objective_type = objective_type
        self.max_jobs = max_jobs
        self.max_parallel_jobs = max_parallel_jobs
        self.max_runtime_in_seconds = max_runtime_in_seconds
        self.early_stopping_type = early_stopping_type
        self.base_tuning_job_name = base_tuning_job_name or estimator.base_job_name
        self.random_seed = random_seed
        self.completion_criteria = dict(completion_criteria) if completion_criteria else None
        self.strategy_config = dict(strategy_config) if strategy_config else None
        self.warm_start_config = dict(warm_start_config) if warm_start_config else None
        self.tags = list(tags or [])
        self.latest_tuning_job: str | None = None
        self._described: DescribeHyperParameterTuningJobResponse | None = None

    @property
    def client(self) -> Client:
        return self.estimator.client

    # --- the request --------------------------------------------------------------------------
    def tuning_job_spec(self, name: str, training_spec: dict[str, Any]) -> dict[str, Any]:
        """The CreateHyperParameterTuningJob request, from the estimator's training job."""
        tuned = set(self.hyperparameter_ranges)
        static = {
            k: v for k, v in (training_spec.get("HyperParameters") or {}).items() if k not in tuned
        }
        definition: dict[str, Any] = {
            k: training_spec[k] for k in _DEFINITION_FIELDS if k in training_spec
        }
        definition["StaticHyperParameters"] = static
        if self.metric_definitions is not None:
            definition["AlgorithmSpecification"] = {
                **definition["AlgorithmSpecification"],
                "MetricDefinitions": self.metric_definitions,
            }
        limits: dict[str, Any] = {"MaxParallelTrainingJobs": self.max_parallel_jobs}
        if self.max_jobs is not None:
            limits["MaxNumberOfTrainingJobs"] = self.max_jobs
        if self.max_runtime_in_seconds is not None:
            limits["MaxRuntimeInSeconds"] = self.max_runtime_in_seconds
        config: dict[str, Any] = {
            "Strategy": self.strategy,
            "HyperParameterTuningJobObjective": {
                "Type": self.objective_type,
                "MetricName": self.objective_metric_name,
            },
            "ResourceLimits": limits,
            "ParameterRanges": parameter_ranges(self.hyperparameter_ranges),
            "TrainingJobEarlyStoppingType": self.early_stopping_type,
        }
        if self.random_seed is not None:
            config["RandomSeed"] = self.random_seed
        if self.completion_criteria is not None:
            config["TuningJobCompletionCriteria"] = self.completion_criteria
        if self.strategy_config is not None:
            config["StrategyConfig"] = self.strategy_config
        spec: dict[str, Any] = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": definition,
        }
        if self.warm_start_config is not None:
            spec["WarmStartConfig"] = self.warm_start_config
        if self.tags:
            spec["Tags"] = self.tags
        return spec

    # --- run ----------------------------------------------------------------------------------
    def fit(
        self,
        inputs: str | Mapping[str, str] | None = None,
        *,
        job_name: str | None = None,
        wait: bool = True,
        on_status: Callable[[DescribeHyperParameterTuningJobResponse], None] | None = None,
    ) -> DescribeHyperParameterTuningJobResponse | None:
        """Create the tuning job (the source uploaded once, under the tuning job's name) and,
        with ``wait``, return when it ends (raising ``JobFailedError`` if it failed)."""
        name = job_name or tuning_job_name(self.base_tuning_job_name)
        training = self.estimator.prepare(name, inputs)
        self.client.create_tuning_job(self.tuning_job_spec(name, training))
        self.latest_tuning_job = name
        self._described = None
        if not wait:
            return None
        return self.wait(on_status=on_status)

    def _name(self) -> str:
        if self.latest_tuning_job is None:
            raise ValidationError("no tuning job yet: call fit() first", field="tuning_job")
        return self.latest_tuning_job

    def wait(
        self,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        on_status: Callable[[DescribeHyperParameterTuningJobResponse], None] | None = None,
    ) -> DescribeHyperParameterTuningJobResponse:
        name = self._name()
        job = self.client.wait_for_tuning_job(name, poll=poll, timeout=timeout, on_status=on_status)
        self._described = job
        if job.HyperParameterTuningJobStatus == TuningJobStatus.FAILED:
            raise JobFailedError(f"tuning job {name} failed: {job.FailureReason or 'no reason'}")
        return job

    def describe(self) -> DescribeHyperParameterTuningJobResponse:
        self._described = self.client.describe_tuning_job(self._name())
        return self._described

    def stop(self) -> None:
        self.client.stop_tuning_job(self._name())

    def best_training_job(self) -> str:
        """The name of the best trial so far (SageMaker's BestTrainingJob)."""
        job = self.describe()
        if job.BestTrainingJob is None:
            raise ValidationError(
                f"tuning job {job.HyperParameterTuningJobName} has no trial with an objective "
                f"value yet ({job.HyperParameterTuningJobStatus})",
                field="BestTrainingJob",
            )
        return job.BestTrainingJob.TrainingJobName

    def trials(
        self, *, sort_by: str = "FinalObjectiveMetricValue", sort_order: str | None = None
    ) -> list[HyperParameterTrainingJobSummary]:
        """Every trial; by the objective, best first, unless told otherwise."""
        if sort_order is None:
            by_objective = sort_by == "FinalObjectiveMetricValue"
            maximize = self.objective_type == "Maximize"
            sort_order = "Descending" if by_objective and maximize else "Ascending"
        return self.client.all_tuning_job_trials(
            self._name(), sort_by=sort_by, sort_order=sort_order
        )
