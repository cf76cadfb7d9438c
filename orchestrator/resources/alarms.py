"""Metric alarms, shaped as CloudWatch's ``PutMetricAlarm`` (pure models, no I/O).

An alarm watches one metric (Namespace, MetricName, Dimensions) through one statistic over
``Period`` seconds, and is in ALARM when ``DatapointsToAlarm`` of the last
``EvaluationPeriods`` datapoints cross ``Threshold`` (``monitoring.alarms`` decides). Actions
are strings run on a state change (``ACTION_FORMS``): an ``https://`` webhook, or an
``arn:aws:sagemaker:REGION:ACCOUNT:action/...`` that stops a training job or scales an endpoint
variant. Metric math (``Metrics``) is refused, naming the field.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from orchestrator.resources.common import Output, Spec

AlarmState = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
HistoryType = Literal["ConfigurationUpdate", "StateUpdate", "Action"]
STATES: tuple[str, ...] = ("OK", "ALARM", "INSUFFICIENT_DATA")
Comparison = Literal[
    "GreaterThanThreshold",
    "GreaterThanOrEqualToThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
]
BasicStatistic = Literal["SampleCount", "Average", "Sum", "Minimum", "Maximum"]
TreatMissing = Literal["missing", "ignore", "breaching", "notBreaching"]
_PERCENTILE = re.compile(r"^p(100(\.0+)?|[0-9]{1,2}(\.[0-9]+)?)$")
# The action strings understood (REGION and ACCOUNT are not checked: this is one region).
STOP_TRAINING_JOB = re.compile(
    r"^arn:aws:sagemaker:[^:]*:[^:]*:action/stop-training-job/(?P<job>[A-Za-z0-9-]{1,63})$"
)
SCALE_VARIANT = re.compile(
    r"^arn:aws:sagemaker:[^:]*:[^:]*:action/scale-variant/(?P<endpoint>[A-Za-z0-9-]{1,63})/"
    r"(?P<variant>[A-Za-z0-9-]{1,63})/(?P<count>[0-9]{1,4})$"
)
ACTION_FORMS = (
    "https://HOST/PATH (a webhook: a signed JSON POST), "
    "arn:aws:sagemaker:REGION:ACCOUNT:action/stop-training-job/JOB, or "
    "arn:aws:sagemaker:REGION:ACCOUNT:action/scale-variant/ENDPOINT/VARIANT/COUNT"
)
Name255 = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ActionList = Annotated[list[Annotated[str, StringConstraints(max_length=1024)]],
                       Field(max_length=5)]  # fmt: skip


class AlarmDimension(Spec):
    Name: Name255
    Value: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


def action_kind(action: str) -> str | None:
    """The kind of action ``action`` is (webhook, stop-training-job, scale-variant), or None
    for a string of no known form."""
    if action.startswith(("https://", "http://")):  # http:// only with private webhooks allowed
        return "webhook"
    if STOP_TRAINING_JOB.match(action):
        return "stop-training-job"
    if SCALE_VARIANT.match(action):
        return "scale-variant"
    return None


class MetricAlarm(Spec):
    """``PutMetricAlarm``'s request."""

    AlarmName: Name255
    AlarmDescription: Annotated[str, StringConstraints(max_length=1024)] | None = None
    Namespace: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = None
    MetricName: Name255 | None = None
    Dimensions: Annotated[list[AlarmDimension], Field(max_length=30)] = []
    Statistic: BasicStatistic | None = None
    ExtendedStatistic: str | None = None
    Period: int | None = None
    Unit: str | None = None
    EvaluationPeriods: Annotated[int, Field(ge=1)]
    DatapointsToAlarm: Annotated[int, Field(ge=1)] | None = None
    Threshold: float
    ComparisonOperator: Comparison
    TreatMissingData: TreatMissing = "missing"
    ActionsEnabled: bool = True
    AlarmActions: ActionList = []
    OKActions: ActionList = []
    InsufficientDataActions: ActionList = []
    # Metric math: refused with a message naming it (one metric per alarm here).
    Metrics: list[dict[str, Any]] | None = None
    Tags: list[dict[str, str]] = []

    @field_validator("Threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number, such as 1 or 0.05")
        return v

    @field_validator("Period")
    @classmethod
    def _period(cls, v: int | None) -> int | None:
        if v is not None and (v < 10 or (v not in (10, 30) and v % 60)):
            raise ValueError(
                "must be 10 or 30 (high resolution) or a multiple of 60 seconds, as CloudWatch"
            )
        return v

    @field_validator("ExtendedStatistic")
    @classmethod
    def _percentile(cls, v: str | None) -> str | None:
        if v is not None and not _PERCENTILE.match(v):
            raise ValueError("must be a percentile p0..p100 such as p99 or p99.9")
        return v

    @field_validator("AlarmActions", "OKActions", "InsufficientDataActions")
    @classmethod
    def _actions(cls, v: list[str]) -> list[str]:
        for a in v:
            if action_kind(a) is None:
                raise ValueError(f"{a!r} is not an action this server runs: use {ACTION_FORMS}")
        return v

    @model_validator(mode="after")
    def _whole(self) -> MetricAlarm:
        if self.Metrics is not None:
            raise ValueError(
                "Metrics: metric math alarms are not supported here; give one metric with "
                "Namespace, MetricName, Dimensions, Statistic (or ExtendedStatistic) and Period"
            )
        for field in ("Namespace", "MetricName", "Period"):
            if getattr(self, field) is None:
                raise ValueError(f"{field}: required field is missing")
        if (self.Statistic is None) == (self.ExtendedStatistic is None):
            raise ValueError("Statistic: give exactly one of Statistic and ExtendedStatistic")
        if self.DatapointsToAlarm is not None and self.DatapointsToAlarm > self.EvaluationPeriods:
            raise ValueError(
                f"DatapointsToAlarm: {self.DatapointsToAlarm} is more than EvaluationPeriods "
                f"({self.EvaluationPeriods}); it must be at most EvaluationPeriods"
            )
        if self.Period is not None and self.Period * self.EvaluationPeriods > 86400:
            raise ValueError(
                "EvaluationPeriods: Period times EvaluationPeriods must be at most one day "
                "(86400 s)"
            )
        return self

    @property
    def stat(self) -> str:
        return self.Statistic or self.ExtendedStatistic or ""

    @property
    def m(self) -> int:
        return self.DatapointsToAlarm or self.EvaluationPeriods


class AlarmOut(Output):
    """An alarm as ``DescribeAlarms`` answers it (MetricAlarms[])."""

    AlarmName: str
    AlarmArn: str
    AlarmDescription: str | None = None
    Namespace: str | None = None
    MetricName: str | None = None
    Dimensions: list[dict[str, str]] = []
    Statistic: str | None = None
    ExtendedStatistic: str | None = None
    Period: int | None = None
    Unit: str | None = None
    EvaluationPeriods: int
    DatapointsToAlarm: int | None = None
    Threshold: float
    ComparisonOperator: str
    TreatMissingData: str
    ActionsEnabled: bool
    AlarmActions: list[str] = []
    OKActions: list[str] = []
    InsufficientDataActions: list[str] = []
    StateValue: str
    StateReason: str
    StateReasonData: str | None = None
    StateUpdatedTimestamp: datetime
    AlarmConfigurationUpdatedTimestamp: datetime


class AlarmHistoryItem(Output):
    AlarmName: str
    AlarmType: str = "MetricAlarm"
    Timestamp: datetime
    HistoryItemType: HistoryType
    HistorySummary: str
    HistoryData: str


class AlarmList(Output):
    MetricAlarms: list[AlarmOut]


class AlarmHistory(Output):
    AlarmHistoryItems: list[AlarmHistoryItem]


class SetAlarmStateRequest(Spec):
    StateValue: AlarmState
    StateReason: Annotated[str, StringConstraints(min_length=1, max_length=1023)]
    StateReasonData: str | None = None


class DeleteAlarmsRequest(Spec):
    AlarmNames: Annotated[list[Name255], Field(min_length=1, max_length=100)]
