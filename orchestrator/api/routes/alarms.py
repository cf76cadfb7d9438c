"""``/api/v1/alarms``: metric alarms (PutMetricAlarm, DescribeAlarms, DeleteAlarms,
DescribeAlarmHistory, SetAlarmState), the same operations as the CloudWatch protocol's."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from orchestrator.api.alarms import Alarms, unavailable
from orchestrator.api.deps import authorized, plane
from orchestrator.api.service import ControlPlane
from orchestrator.resources.alarms import (
    AlarmHistory,
    AlarmList,
    AlarmOut,
    AlarmState,
    DeleteAlarmsRequest,
    HistoryType,
    MetricAlarm,
    SetAlarmStateRequest,
)
from orchestrator.resources.kinds import REST_PREFIX

router = APIRouter(prefix=f"{REST_PREFIX}/alarms", tags=["Alarms"])
Plane = Annotated[ControlPlane, Depends(plane)]


def _alarms(cp: ControlPlane) -> Alarms:
    if cp.alarms is None:
        raise unavailable()
    return cp.alarms


@router.post(
    "",
    response_model=AlarmOut,
    dependencies=[Depends(authorized("cloudwatch:PutMetricAlarm"))],
    responses={400: {"description": "A bad field (named), a webhook to a private address"}},
)
def put_alarm(body: MetricAlarm, cp: Plane) -> AlarmOut:
    """Create or update an alarm (a new one starts INSUFFICIENT_DATA until evaluated)."""
    alarms = _alarms(cp)
    alarms.put(body)
    return alarms.out(body.AlarmName)


@router.get(
    "",
    response_model=AlarmList,
    dependencies=[Depends(authorized("cloudwatch:DescribeAlarms"))],
)
def describe_alarms(
    cp: Plane,
    AlarmNamePrefix: str | None = None,
    StateValue: AlarmState | None = None,
    AlarmNames: Annotated[list[str] | None, Query()] = None,
) -> AlarmList:
    """Alarms by name, by name prefix and/or state (OK, ALARM, INSUFFICIENT_DATA)."""
    found = _alarms(cp).describe(prefix=AlarmNamePrefix, state=StateValue, names=AlarmNames)
    return AlarmList(MetricAlarms=found)


@router.get(
    "/{name}/history",
    response_model=AlarmHistory,
    dependencies=[Depends(authorized("cloudwatch:DescribeAlarmHistory"))],
)
def alarm_history(
    name: str,
    cp: Plane,
    *,
    HistoryItemType: HistoryType | None = None,
    StartDate: datetime | None = None,
    EndDate: datetime | None = None,
    MaxRecords: Annotated[int, Query(ge=1, le=100)] = 100,
) -> AlarmHistory:
    """StateUpdate, ConfigurationUpdate and Action items, newest first."""
    items = _alarms(cp).history(
        name, type_=HistoryItemType, limit=MaxRecords,
        start=StartDate.timestamp() if StartDate else None,
        end=EndDate.timestamp() if EndDate else None,
    )  # fmt: skip
    return AlarmHistory(AlarmHistoryItems=items)


@router.post(
    "/delete",
    dependencies=[Depends(authorized("cloudwatch:DeleteAlarms"))],
)
def delete_alarms(body: DeleteAlarmsRequest, cp: Plane) -> dict[str, int]:
    """Delete alarms and their history (names that do not exist are ignored)."""
    return {"Deleted": _alarms(cp).delete(body.AlarmNames)}


@router.post(
    "/{name}/state",
    response_model=AlarmOut,
    dependencies=[Depends(authorized("cloudwatch:SetAlarmState"))],
    responses={404: {"description": "No such alarm"}},
)
def set_alarm_state(name: str, body: SetAlarmStateRequest, cp: Plane) -> AlarmOut:
    """Set the state now (its actions run: a way to test them); the next evaluation sets it
    from the data again."""
    alarms = _alarms(cp)
    alarms.set_state(name, body.StateValue, body.StateReason, body.StateReasonData)
    return alarms.out(name)
