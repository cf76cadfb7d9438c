"""Metric alarms: put, describe, delete, history, set state; the evaluator and the actions.

::

    PutMetricAlarm --> AlarmStore (SQL) <-- Evaluator (a service: every evaluation_seconds)
                                               | reads datapoints the way GetMetricStatistics
                                               | does, decides (monitoring.alarms, pure),
                                               v records a StateUpdate on a change
                                           ActionRunner (a worker thread + queue)
                                               webhook: signed POST, retried with backoff
                                               stop-training-job, scale-variant

Evaluation never waits on an action: a state change only enqueues its actions; a webhook that
times out is retried by the worker (``webhook_attempts``, waits ``webhook_backoff_seconds``
doubling) and then recorded as a failed Action item in the alarm's history.

Webhooks: the body is JSON (AlarmName, NewStateValue, OldStateValue, NewStateReason,
StateChangeTime, AlarmArn, Trigger) signed with HMAC-SHA256 under
``ORCH_ALARMS__WEBHOOK_SECRET``: ``X-Orchestrator-Signature: sha256=<hex of the body's MAC>``.
The URL's host is checked by ``netguard`` at put and resolved through ``resolve_checked`` at
each send, so no loopback, private or link-local address is reached (unless the test-only
``ORCH_ALARMS__ALLOW_PRIVATE_WEBHOOKS``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import httpx

from orchestrator import metrics, tenancy
from orchestrator.errors import (
    NotFoundError,
    OrchestratorError,
    UnavailableError,
    ValidationError,
)
from orchestrator.monitoring.alarms import Evaluation, evaluate, window
from orchestrator.netguard import check_host, resolve_checked
from orchestrator.resources.alarms import (
    SCALE_VARIANT,
    STATES,
    STOP_TRAINING_JOB,
    AlarmHistoryItem,
    AlarmOut,
    MetricAlarm,
    action_kind,
)
from orchestrator.resources.endpoints import UpdateEndpointWeightsAndCapacitiesRequest
from orchestrator.resources.validation import parse_spec
from orchestrator.settings import AlarmSettings
from orchestrator.store.alarms_sql import AlarmRecord, AlarmStore, HistoryRecord

if TYPE_CHECKING:
    from orchestrator.api.service import ControlPlane

log = logging.getLogger(__name__)
# (namespace, metric, dimensions, unit, stat, start, end, period) -> {period start: value}
Fetch = Callable[[MetricAlarm, float, float], dict[float, float]]
SIGNATURE_HEADER = "X-Orchestrator-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _iso(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def alarm_out(r: AlarmRecord, arn: str) -> AlarmOut:
    a = r.alarm
    return AlarmOut(
        **a.model_dump(exclude={"Dimensions", "Metrics", "Tags"}),
        Dimensions=[d.model_dump() for d in a.Dimensions],
        AlarmArn=arn,
        StateValue=r.state,
        StateReason=r.reason,
        StateReasonData=r.reason_data,
        StateUpdatedTimestamp=_iso(r.state_updated),
        AlarmConfigurationUpdatedTimestamp=_iso(r.config_updated),
    )


def history_out(h: HistoryRecord) -> AlarmHistoryItem:
    return AlarmHistoryItem(
        AlarmName=h.name,
        Timestamp=_iso(h.at),
        HistoryItemType=h.type,
        HistorySummary=h.summary,
        HistoryData=h.data,
    )


@dataclass(frozen=True)
class Change:
    """A state change whose actions are to run."""

    alarm: MetricAlarm
    old: str
    new: str
    reason: str
    at: float
    account: str = tenancy.ROOT


class ActionRunner:
    """Runs a change's actions on a worker thread, so evaluation never waits on them."""

    def __init__(
        self,
        alarms: Alarms,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.alarms = alarms
        self.settings = alarms.settings
        self._transport = transport
        self._sleep = sleep
        self._queue: queue.Queue[Change | None] = queue.Queue()
        self._thread: threading.Thread | None = None

    def submit(self, change: Change) -> None:
        if self._thread is None:  # not started (tests, a one-off): run inline
            self.run(change)
        else:
            self._queue.put(change)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="alarm-actions", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every queued change has run (tests)."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _loop(self) -> None:
        while True:
            change = self._queue.get()
            try:
                if change is None:
                    return
                self.run(change)
            except Exception:  # an action's bug must not end the worker
                log.exception("alarm action failed")
            finally:
                self._queue.task_done()

    def run(self, change: Change) -> None:
        a = change.alarm
        if not a.ActionsEnabled:
            return
        actions = {"ALARM": a.AlarmActions, "OK": a.OKActions,
                   "INSUFFICIENT_DATA": a.InsufficientDataActions}[change.new]  # fmt: skip
        for action in actions:
            with tenancy.acting_as(change.account):  # an alarm acts on its own account's only
                ok, detail = self._one(action, change)
            metrics.record_alarm_action(action_kind(action) or "unknown", ok=ok)
            summary = (
                f"Successfully executed action {action}"
                if ok
                else f"Failed to execute action {action}"
            )
            self.alarms.store.add_history(
                a.AlarmName,
                "Action",
                summary,
                json.dumps({"actionState": "Succeeded" if ok else "Failed", "action": action,
                            "newState": change.new, "detail": detail}),
                self.alarms.clock_now(),
            )  # fmt: skip

    def _one(self, action: str, change: Change) -> tuple[bool, str]:
        kind = action_kind(action)
        try:
            if kind == "webhook":
                return self._webhook(action, change)
            if kind == "stop-training-job":
                m = STOP_TRAINING_JOB.match(action)
                assert m is not None
                self.alarms.cp.stop_training_job(m["job"])
                return True, f"stop requested for training job {m['job']!r}"
            if kind == "scale-variant":
                m = SCALE_VARIANT.match(action)
                assert m is not None
                req = UpdateEndpointWeightsAndCapacitiesRequest.model_validate(
                    {"DesiredWeightsAndCapacities": [
                        {"VariantName": m["variant"], "DesiredInstanceCount": int(m["count"])}
                    ]}
                )  # fmt: skip
                self.alarms.cp.update_endpoint_weights_and_capacities(m["endpoint"], req)
                return True, (
                    f"endpoint {m['endpoint']!r} variant {m['variant']!r} scaled to {m['count']}"
                )
        except OrchestratorError as e:
            return False, e.message
        return False, f"{action!r} is not an action this server runs"

    def _webhook(self, url: str, change: Change) -> tuple[bool, str]:
        s = self.settings
        a = change.alarm
        body = json.dumps({
            "AlarmName": a.AlarmName,
            "AlarmDescription": a.AlarmDescription,
            "AlarmArn": self.alarms.arn(a.AlarmName, change.account),
            "NewStateValue": change.new,
            "OldStateValue": change.old,
            "NewStateReason": change.reason,
            "StateChangeTime": _iso(change.at).isoformat(),
            "Trigger": {
                "MetricName": a.MetricName, "Namespace": a.Namespace,
                "Statistic": a.Statistic, "ExtendedStatistic": a.ExtendedStatistic,
                "Dimensions": [d.model_dump() for d in a.Dimensions], "Period": a.Period,
                "EvaluationPeriods": a.EvaluationPeriods, "Threshold": a.Threshold,
                "ComparisonOperator": a.ComparisonOperator,
                "TreatMissingData": a.TreatMissingData,
            },
        }, sort_keys=True).encode()  # fmt: skip
        headers = {"content-type": "application/json"}
        if s.webhook_secret is not None:
            headers[SIGNATURE_HEADER] = sign(s.webhook_secret.get_secret_value(), body)
        last = ""
        for attempt in range(s.webhook_attempts):
            if attempt:
                self._sleep(s.webhook_backoff_seconds * 2 ** (attempt - 1))
            try:
                if not s.allow_private_webhooks:  # again at each send: DNS may have changed
                    parts = urlsplit(url)
                    resolve_checked(parts.hostname or "", parts.port or 443, "AlarmActions")
                with httpx.Client(
                    transport=self._transport, timeout=s.webhook_timeout_seconds
                ) as client:
                    answer = client.post(url, content=body, headers=headers)
                if answer.status_code < 300:
                    return True, f"HTTP {answer.status_code} after {attempt + 1} attempt(s)"
                last = f"HTTP {answer.status_code}"
                if 400 <= answer.status_code < 500 and answer.status_code != 429:
                    break  # the receiver refuses it: retrying will not help
            except ValidationError as e:
                return False, e.message
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        return False, f"{last} after {attempt + 1} attempt(s)"


class Alarms:
    """The alarms of one control plane: the operations, the evaluator (a ``Service``)."""

    def __init__(
        self,
        cp: ControlPlane,
        store: AlarmStore,
        fetch: Fetch,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cp = cp
        self.store = store
        self.settings: AlarmSettings = cp.settings.alarms
        self.arn_prefix = f"arn:aws:cloudwatch:{cp.settings.region}:{cp.settings.account_id}:alarm:"
        self.fetch = fetch
        self.actions = ActionRunner(self, transport=transport, sleep=sleep)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.passes = 0

    def clock_now(self) -> float:
        return self.cp.clock.now().timestamp()

    def arn(self, name: str, account: str) -> str:
        """The alarm's ARN: it carries its own account's id."""
        s = self.cp.settings
        acct = tenancy.arn_account(account, s.account_id)
        return f"arn:aws:cloudwatch:{s.region}:{acct}:alarm:{name}"

    # --- operations ---------------------------------------------------------------------------
    def put(self, body: Any) -> bool:
        alarm = parse_spec(MetricAlarm, body)
        for field in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in getattr(alarm, field):
                if action_kind(action) == "webhook":
                    self._check_webhook(action, field)
        return self.store.put(alarm, self.clock_now())

    def _check_webhook(self, url: str, field: str) -> None:
        s = self.settings
        parts = urlsplit(url)
        if parts.scheme != "https" and not s.allow_private_webhooks:
            raise ValidationError(
                f"{field}: {url!r}: a webhook must be https:// (its body is signed, and sent "
                "over TLS)",
                field=field,
            )
        if not parts.hostname:
            raise ValidationError(f"{field}: {url!r} names no host", field=field)
        if s.webhook_secret is None:
            raise ValidationError(
                f"{field}: webhooks are signed with ORCH_ALARMS__WEBHOOK_SECRET, which is not "
                "set on this control plane; set it, or use another action",
                field=field,
            )
        if not s.allow_private_webhooks:
            check_host(parts.hostname, field)

    def describe(
        self,
        *,
        prefix: str | None = None,
        state: str | None = None,
        names: list[str] | None = None,
    ) -> list[AlarmOut]:
        if state is not None and state not in STATES:
            raise ValidationError(
                f"StateValue: must be one of {', '.join(STATES)} (got {state!r})",
                field="StateValue",
            )
        found = self.store.list(prefix=prefix, state=state, names=names)
        return [alarm_out(r, self.arn(r.alarm.AlarmName, r.account)) for r in found]

    def out(self, name: str) -> AlarmOut:
        """The alarm as DescribeAlarms answers it (404 when there is none)."""
        r = self.get(name)
        return alarm_out(r, self.arn(name, r.account))

    def get(self, name: str) -> AlarmRecord:
        r = self.store.get(name)
        if r is None:
            raise NotFoundError(f"alarm {name!r} does not exist", field="AlarmName")
        return r

    def delete(self, names: list[str]) -> int:
        return self.store.delete(names)

    def states(self, names: list[str]) -> dict[str, str]:
        """The state of each of these alarms that exists (an endpoint update's rollback
        alarms named by AlarmName alone read it)."""
        return {r.alarm.AlarmName: r.state for r in self.store.list(names=names)}

    def history(
        self,
        name: str | None,
        *,
        type_: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
    ) -> list[AlarmHistoryItem]:
        if type_ not in (None, "ConfigurationUpdate", "StateUpdate", "Action"):
            raise ValidationError(
                "HistoryItemType: must be ConfigurationUpdate, StateUpdate or Action "
                f"(got {type_!r})",
                field="HistoryItemType",
            )
        rows = self.store.history(name, type_=type_, start=start, end=end, limit=limit)
        return [history_out(h) for h in rows]

    def set_state(self, name: str, state: str, reason: str, data: str | None = None) -> None:
        """SetAlarmState: the state moves now (its actions run); the next evaluation moves it
        back if the data say otherwise."""
        if state not in STATES:
            raise ValidationError(
                f"StateValue: must be one of {', '.join(STATES)} (got {state!r})",
                field="StateValue",
            )
        data = data or None
        if data is not None:
            try:
                json.loads(data)
            except ValueError as e:
                raise ValidationError(
                    "StateReasonData: must be a JSON document", field="StateReasonData"
                ) from e
        record = self.get(name)
        self._move(record, Evaluation(state, reason, data or ""))

    # --- evaluation ---------------------------------------------------------------------------
    def _move(self, record: AlarmRecord, ev: Evaluation) -> bool:
        now = self.clock_now()
        if ev.state == record.state:
            return False
        old = self.store.set_state(
            record.alarm.AlarmName, ev.state, ev.reason, ev.reason_data or None, now,
            expected=record.state,
        )  # fmt: skip
        if old is None:
            return False
        metrics.record_alarm_state_change(ev.state)
        self.actions.submit(
            Change(record.alarm, old, ev.state, ev.reason, now, account=record.account)
        )
        return True

    def evaluate_all(self) -> int:
        """One pass over every alarm; how many changed state. An alarm whose metric cannot be
        read this pass keeps its state (logged), and the pass goes on. Each alarm's metric is
        read acting for the alarm's own account, so it sees only that account's series."""
        changed = 0
        now = self.cp.clock.now()
        for record in self.store.list():
            try:
                start, end = window(record.alarm, now)
                with tenancy.acting_as(record.account):
                    points = self.fetch(record.alarm, start, end)
                ev = evaluate(record.alarm, points, record.state, now)
                changed += self._move(record, ev)
            except Exception:  # one alarm's trouble must not stop the others
                log.exception("alarm %s not evaluated", record.alarm.AlarmName)
        self.passes += 1
        return changed

    def interval(self) -> float:
        periods = [r.alarm.Period or 60 for r in self.store.list()]
        return min([self.settings.evaluation_seconds, *(p / 6 for p in periods)])

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.settings.evaluation_seconds
            try:
                self.evaluate_all()
                wait = self.interval()
            except Exception:
                log.exception("alarm evaluation pass failed")
            self._stop.wait(wait)

    def start(self) -> None:
        self.actions.start()
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="alarms", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.actions.stop()


def unavailable() -> UnavailableError:
    return UnavailableError(
        "this control plane keeps no alarms (they live in the SQL store: on a cluster set "
        "ORCH_DATABASE_URL to a PostgreSQL database; ORCH_ALARMS__ENABLED must be true)"
    )
