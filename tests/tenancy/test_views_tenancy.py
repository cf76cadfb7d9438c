"""Tenancy of the derived views: alarms, metrics, logs, usage, the audit lookup. For a caller
acting as account B, account A's items are absent (the same answer as for a name nobody
holds); the system (no account) sees every account's; tables from before accounts migrate
with their rows the server's own (ROOT).

Ownership of a resource is ``Record.account``; until the state store stamps it, ``owned``
wraps the store's ``find`` so the named resources carry the account a test gives them (the
seam ``api.owners`` reads through)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import create_engine

from orchestrator import tenancy
from orchestrator.access import Principal
from orchestrator.api import serverlog
from orchestrator.api.auditing import _who_and_what
from orchestrator.api.aws.cloudwatch import AlarmOperations, Metrics, alarm_fetch
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.loggroups import CONTROL_PLANE_GROUP
from orchestrator.api.aws.logs import Logs
from orchestrator.api.owners import Owners
from orchestrator.api.routes.audit import lookup_account, verify_trail
from orchestrator.api.routes.monitoring import _own, endpoint_metrics
from orchestrator.api.usage import collect_usage, usage_report
from orchestrator.audit import LookupFilter
from orchestrator.audit.record import Call, to_record
from orchestrator.errors import (
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from orchestrator.objects import LocalKeyring
from orchestrator.resources.alarms import MetricAlarm
from orchestrator.store.alarms_sql import AlarmStore
from orchestrator.store.metrics_sql import MetricsStore, UserMetricsStore
from orchestrator.store.source import Record
from orchestrator.testing import (
    FakeClock,
    LocalControlPlane,
    local_control_plane,
    tarball,
    training_job_spec,
)
from orchestrator.usage import PriceTable

A, B = "111111111111", "222222222222"
SERVER = "000000000000"  # the server's own account id (settings.account_id)
TRAINING = "/aws/sagemaker/TrainingJobs"
WHO = Principal(key_id="k", name="t", role="admin")
SETTINGS: dict[str, Any] = {"webhook_secret": "s", "allow_private_webhooks": True}


def alarm(name: str = "hot", **fields: Any) -> dict[str, Any]:
    return {
        "AlarmName": name, "Namespace": "MyApp", "MetricName": "errors",
        "Dimensions": [{"Name": "Service", "Value": "checkout"}], "Statistic": "Sum",
        "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold", **fields,
    }  # fmt: skip


@pytest.fixture
def lcp(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path, clock=FakeClock(), alarms=SETTINGS) as plane:
        assert plane.plane.alarms is not None
        plane.plane.alarms.stop()
        yield plane


def owned(lcp: LocalControlPlane, **accounts: str) -> None:
    """The named resources (name=account) belong to those accounts: their rows' account set
    in the state store, which then shows them to those accounts alone."""
    from sqlalchemy import update

    from orchestrator.store.tables import resources

    with lcp.plane.store.engine.begin() as conn:
        for name, account in accounts.items():
            conn.execute(update(resources).where(resources.c.name == name).values(account=account))


# --- alarms -----------------------------------------------------------------------------------
def test_another_accounts_alarm_is_absent_to_every_operation(lcp: LocalControlPlane) -> None:
    alarms = lcp.plane.alarms
    assert alarms is not None
    ops = AlarmOperations(lcp.plane)
    with tenancy.acting_as(A):
        ops.put_metric_alarm(alarm(), WHO)
        [mine] = ops.describe_alarms({}, WHO)["MetricAlarms"]
        assert mine["AlarmArn"] == f"arn:aws:cloudwatch:us-east-1:{A}:alarm:hot"
    with tenancy.acting_as(B):
        assert ops.describe_alarms({}, WHO)["MetricAlarms"] == []
        assert ops.describe_alarms({"AlarmNames": ["hot"]}, WHO)["MetricAlarms"] == []
        assert ops.describe_alarm_history({"AlarmName": "hot"}, WHO)["AlarmHistoryItems"] == []
        assert ops.describe_alarm_history({}, WHO)["AlarmHistoryItems"] == []
        answers = []
        for name in ("hot", "nobody-has-this"):
            with pytest.raises(AwsError) as deleted:
                ops.delete_alarms({"AlarmNames": [name]}, WHO)
            with pytest.raises(AwsError) as set_state:
                ops.set_alarm_state(
                    {"AlarmName": name, "StateValue": "ALARM", "StateReason": "x"}, WHO
                )
            with pytest.raises(NotFoundError) as got:
                alarms.out(name)
            answers.append(
                (deleted.value.aws_code, deleted.value.http_status,
                 deleted.value.message.replace(name, "N"), set_state.value.aws_code,
                 set_state.value.http_status, got.value.status_code,
                 got.value.message.replace(name, "N"))
            )  # fmt: skip
        assert answers[0] == answers[1]
        assert answers[0][0] == "ResourceNotFound"
        assert alarms.delete(["hot"]) == 0
        assert alarms.states(["hot"]) == {}
        # names are server-wide: B can neither take nor overwrite A's
        with pytest.raises(ConflictError, match="AlarmName"):
            alarms.put(alarm(Threshold=99.0))
        ops.put_metric_alarm(alarm("bs"), WHO)
        assert [a["AlarmName"] for a in ops.describe_alarms({}, WHO)["MetricAlarms"]] == ["bs"]
    with tenancy.acting_as(A):
        [still] = alarms.describe(names=["hot"])
        assert (still.Threshold, still.StateValue) == (1.0, "INSUFFICIENT_DATA")
        assert len(alarms.history("hot")) == 1
    # the system sees both accounts'; the server's own account only its own (none)
    assert sorted(a.AlarmName for a in alarms.describe()) == ["bs", "hot"]
    with tenancy.acting_as(tenancy.ROOT):
        assert alarms.describe() == []


def test_the_evaluator_reads_each_alarms_metric_as_its_own_account(
    lcp: LocalControlPlane,
) -> None:
    alarms = lcp.plane.alarms
    assert alarms is not None
    seen: list[tuple[str, str | None]] = []

    def fetch(a: MetricAlarm, start: float, end: float) -> dict[float, float]:
        seen.append((a.AlarmName, tenancy.current()))
        return {}

    alarms.fetch = fetch
    with tenancy.acting_as(A):
        alarms.put(alarm("a1"))
    with tenancy.acting_as(B):
        alarms.put(alarm("b1"))
    alarms.put(alarm("root1"))
    alarms.evaluate_all()
    assert sorted(seen) == [("a1", A), ("b1", B), ("root1", tenancy.ROOT)]


def test_an_alarm_on_another_accounts_endpoint_sees_no_data(
    lcp: LocalControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = lcp.plane
    _endpoint_with_traffic(lcp)
    owned(lcp, ep=A)
    alarms = cp.alarms
    assert alarms is not None
    alarms.fetch = alarm_fetch(cp)
    body = alarm(
        Namespace="AWS/SageMaker", MetricName="Invocations", Threshold=0.0,
        Dimensions=[{"Name": "EndpointName", "Value": "ep"},
                    {"Name": "VariantName", "Value": "v1"}],
        TreatMissingData="notBreaching", EvaluationPeriods=3, DatapointsToAlarm=2,
    )  # fmt: skip
    with tenancy.acting_as(A):
        alarms.put({**body, "AlarmName": "mine"})
    with tenancy.acting_as(B):
        alarms.put({**body, "AlarmName": "spy"})
    alarms.evaluate_all()
    assert {a.AlarmName: a.StateValue for a in alarms.describe()} == {
        "mine": "ALARM", "spy": "OK",
    }  # fmt: skip


def test_an_alarms_table_from_before_accounts_migrates_its_rows_to_root(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    spec = MetricAlarm.model_validate(alarm("old")).model_dump_json(exclude_none=True)
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE alarms (name VARCHAR(255) PRIMARY KEY, spec TEXT NOT NULL, "
            "state VARCHAR(32) NOT NULL, reason TEXT NOT NULL, reason_data TEXT, "
            "state_updated FLOAT NOT NULL, config_updated FLOAT NOT NULL)"
        )
        db.execute("INSERT INTO alarms VALUES ('old', ?, 'OK', 'r', NULL, 1.0, 1.0)", (spec,))
    engine = create_engine(f"sqlite:///{path}")
    store = AlarmStore(engine)
    AlarmStore(engine)  # opening it again changes nothing
    [old] = store.list()
    assert (old.alarm.AlarmName, old.account, old.state) == ("old", tenancy.ROOT, "OK")
    with tenancy.acting_as(tenancy.ROOT):
        assert [r.alarm.AlarmName for r in store.list()] == ["old"]
    with tenancy.acting_as(B):
        assert store.get("old") is None
        assert store.list() == []
    engine.dispose()


# --- metrics ----------------------------------------------------------------------------------
def _endpoint_with_traffic(lcp: LocalControlPlane) -> datetime:
    c, cp = lcp.client, lcp.plane
    c.create_model(ModelName="m", PrimaryContainer={"Image": "example/serve:1"})
    c.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{"VariantName": "v1", "ModelName": "m"}]
    )
    c.create_endpoint(EndpointName="ep", EndpointConfigName="c")
    assert cp.series is not None
    t0 = cp.clock.now()
    for i in range(120):
        cp.series.record_invocation("ep", "v1", "c", status=200, model_us=1000.0,
                                    overhead_us=50.0, at=t0.timestamp() + i)  # fmt: skip
    cp.clock.advance(180)  # type: ignore[attr-defined]
    return t0


def _stats(m: Metrics, t0: datetime, name: str = "ep") -> list[Any]:
    p = {
        "Namespace": "AWS/SageMaker", "MetricName": "Invocations", "Statistics": ["Sum"],
        "Dimensions": [{"Name": "EndpointName", "Value": name},
                       {"Name": "VariantName", "Value": "v1"}],
        "StartTime": t0.timestamp(), "EndTime": (t0 + timedelta(seconds=120)).timestamp(),
        "Period": 60,
    }  # fmt: skip
    return [d["Sum"] for d in m.get_metric_statistics(p, WHO)["Datapoints"]]


def _data(m: Metrics, t0: datetime) -> list[Any]:
    q = {"Id": "q", "MetricStat": {"Metric": {
        "Namespace": "AWS/SageMaker", "MetricName": "Invocations",
        "Dimensions": [{"Name": "EndpointName", "Value": "ep"},
                       {"Name": "VariantName", "Value": "v1"}]},
        "Period": 60, "Stat": "Sum"}}  # fmt: skip
    p = {"MetricDataQueries": [q], "StartTime": t0.timestamp(),
         "EndTime": (t0 + timedelta(seconds=120)).timestamp()}  # fmt: skip
    return list(m.get_metric_data(p, WHO)["MetricDataResults"][0]["Values"])


def _listed(m: Metrics) -> set[tuple[str, str]]:
    return {(x["Namespace"], x["MetricName"]) for x in m.list_metrics({}, WHO)["Metrics"]}


def test_an_endpoints_series_is_its_accounts_alone(
    lcp: LocalControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = _endpoint_with_traffic(lcp)
    owned(lcp, ep=A)
    m = Metrics(lcp.plane)
    assert _stats(m, t0) == [60.0, 60.0]  # the system
    with tenancy.acting_as(A):
        assert _stats(m, t0) == [60.0, 60.0]
        assert _data(m, t0) == [60.0, 60.0]
        assert ("AWS/SageMaker", "Invocations") in _listed(m)
    for other in (B, tenancy.ROOT):
        with tenancy.acting_as(other):
            assert _stats(m, t0) == _stats(m, t0, "no-such-endpoint") == []
            assert _data(m, t0) == []
            assert _listed(m) == set()


def test_a_deleted_resources_series_is_the_servers_own(lcp: LocalControlPlane) -> None:
    cp = lcp.plane
    assert cp.series is not None
    t0 = cp.clock.now()
    cp.series.record_invocation("gone", "v1", "c", status=200, model_us=1.0, overhead_us=1.0,
                                at=t0.timestamp())  # fmt: skip
    cp.clock.advance(180)  # type: ignore[attr-defined]
    m = Metrics(cp)
    with tenancy.acting_as(tenancy.ROOT):
        assert _stats(m, t0, "gone") == [1.0]
    with tenancy.acting_as(B):
        assert _stats(m, t0, "gone") == []


def _record(name: str, *, account: str) -> Record:
    now = datetime.now(UTC)
    return Record(kind="Endpoint", name=name, uid="u", spec={}, status={}, phase="InService",
                  active=True, stop_requested=False, delete_requested=False, version=1,
                  created_at=now, updated_at=now,
                  account=account)  # fmt: skip


def test_owners_reads_each_resource_once_as_the_system() -> None:
    calls: list[tuple[str, str, str | None]] = []

    def find(kind: str, name: str) -> Record | None:
        calls.append((kind, name, tenancy.current()))
        return None if name == "absent" else _record(name, account=A)

    owners = Owners(find)
    with tenancy.acting_as(B):
        assert not owners.visible("Endpoint", "ep")
        assert not owners.visible("Endpoint", "ep")
        assert not owners.visible("Endpoint", "absent")
    with tenancy.acting_as(A):
        assert owners.visible("Endpoint", "ep")
    with tenancy.acting_as(tenancy.ROOT):
        assert owners.visible("Endpoint", "absent")
        assert not owners.visible("Endpoint", "ep")
    assert owners.visible("Endpoint", "ep")  # the system
    assert calls == [("Endpoint", "ep", None), ("Endpoint", "absent", None)]


def test_custom_metrics_are_the_putting_accounts(lcp: LocalControlPlane) -> None:
    m = Metrics(lcp.plane)
    now = lcp.plane.clock.now()
    datum = {"MetricName": "errors", "Value": 3.0, "Timestamp": now.timestamp(),
             "Dimensions": [{"Name": "Service", "Value": "checkout"}]}  # fmt: skip
    with tenancy.acting_as(A):
        m.put_metric_data({"Namespace": "MyApp", "MetricData": [datum]}, WHO)
    lcp.plane.clock.advance(120)  # type: ignore[attr-defined]
    p = {
        "Namespace": "MyApp", "MetricName": "errors", "Statistics": ["Sum"],
        "Dimensions": [{"Name": "Service", "Value": "checkout"}],
        "StartTime": (now - timedelta(seconds=60)).timestamp(),
        "EndTime": (now + timedelta(seconds=60)).timestamp(), "Period": 60,
    }  # fmt: skip

    def sums() -> list[float]:
        return [d["Sum"] for d in m.get_metric_statistics(p, WHO)["Datapoints"]]

    with tenancy.acting_as(A):
        assert sums() == [3.0]
        assert ("MyApp", "errors") in _listed(m)
    with tenancy.acting_as(B):
        assert sums() == []
        assert ("MyApp", "errors") not in _listed(m)
    assert sums() == [3.0]


def test_a_user_metrics_table_from_before_accounts_migrates_to_root(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE metric_user_data (id INTEGER PRIMARY KEY AUTOINCREMENT, "
            "namespace VARCHAR(256) NOT NULL, name VARCHAR(256) NOT NULL, "
            "dimensions VARCHAR(4096) NOT NULL, at FLOAT NOT NULL, unit VARCHAR(32) NOT NULL, "
            "stat BLOB NOT NULL)"
        )
        db.execute("INSERT INTO metric_user_data VALUES (1, 'NS', 'n', '[]', 5.0, 'None', x'00')")
    engine = create_engine(f"sqlite:///{path}")
    user = UserMetricsStore(MetricsStore(engine))
    MetricsStore(engine)
    with tenancy.acting_as(tenancy.ROOT):
        assert user.metrics(0) == [("NS", "n", "[]")]
        assert len(user.read("NS", "n", "[]", 0, 10)) == 1
    with tenancy.acting_as(B):
        assert user.metrics(0) == []
        assert user.read("NS", "n", "[]", 0, 10) == []
    engine.dispose()


# --- logs -------------------------------------------------------------------------------------
def test_the_control_plane_log_is_the_servers_own(lcp: LocalControlPlane) -> None:
    logs = Logs(lcp.plane)
    folder = serverlog.log_dir(lcp.plane.settings.logs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "host.log").write_text("2026-01-01T00:00:00.000Z INFO started\n")

    def names() -> list[str]:
        return [g["logGroupName"] for g in logs.describe_log_groups({}, WHO)["logGroups"]]

    with tenancy.acting_as(tenancy.ROOT):
        assert CONTROL_PLANE_GROUP in names()
        assert logs.describe_log_streams({"logGroupName": CONTROL_PLANE_GROUP}, WHO)
    with tenancy.acting_as(B):
        assert CONTROL_PLANE_GROUP not in names()
        answers = []
        for group in (CONTROL_PLANE_GROUP, "/no/such/group"):
            with pytest.raises(AwsError) as e:
                logs.describe_log_streams({"logGroupName": group}, WHO)
            answers.append((e.value.aws_code, e.value.message))
        assert answers[0] == answers[1] == (
            "ResourceNotFoundException", "The specified log group does not exist."
        )  # fmt: skip


def test_a_shared_groups_retention_is_the_servers_to_set(lcp: LocalControlPlane) -> None:
    folder = serverlog.log_dir(lcp.plane.settings.logs_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "host.log").write_text("2026-01-01T00:00:00.000Z INFO started\n")
    logs = Logs(lcp.plane)
    p = {"logGroupName": CONTROL_PLANE_GROUP, "retentionInDays": 7}
    with tenancy.acting_as(B), pytest.raises(AwsError) as absent:
        logs.put_retention_policy(p, WHO)  # another account does not even see this one
    assert absent.value.aws_code == "ResourceNotFoundException"
    group = logs.group(p, WHO)
    with tenancy.acting_as(B), pytest.raises(AwsError) as e:
        logs._own_retention(group)
    assert e.value.aws_code == "AccessDeniedException"
    assert "logGroupName" in e.value.message
    with tenancy.acting_as(tenancy.ROOT):
        logs.put_retention_policy(p, WHO)
    assert logs.retention.all() == {CONTROL_PLANE_GROUP: 7}


# --- usage ------------------------------------------------------------------------------------
def test_a_deleted_endpoints_usage_is_the_servers_own(lcp: LocalControlPlane) -> None:
    store = lcp.plane.store
    hour = lcp.plane.clock.now().replace(minute=0, second=0, microsecond=0)
    store.add_predictions({("gone", "v1", hour.timestamp()): 5})
    since, until = hour - timedelta(hours=1), hour + timedelta(hours=2)

    def predictions() -> int:
        return sum(u.predictions for u in collect_usage(store, since, until))

    assert predictions() == 5
    with tenancy.acting_as(tenancy.ROOT):
        assert predictions() == 5
    with tenancy.acting_as(B):
        assert predictions() == 0


def test_another_accounts_endpoint_usage_is_not_in_the_report(
    lcp: LocalControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = lcp.plane.store
    hour = lcp.plane.clock.now().replace(minute=0, second=0, microsecond=0)
    store.add_predictions({("theirs", "v1", hour.timestamp()): 4})
    monkeypatch.setattr(
        store, "find", lambda kind, name: _record(name, account=A) if name == "theirs" else None
    )
    since, until = hour - timedelta(hours=1), hour + timedelta(hours=2)
    with tenancy.acting_as(A):
        assert sum(u.predictions for u in collect_usage(store, since, until)) == 4
    with tenancy.acting_as(B):
        assert sum(u.predictions for u in collect_usage(store, since, until)) == 0


# --- audit ------------------------------------------------------------------------------------
def test_audit_records_carry_the_callers_account_and_lookup_shows_only_its_own() -> None:
    def record(account: str | None) -> dict[str, Any]:
        return to_record(Call(time=1.0, method="GET", path="/x", principal_name="n",
                              principal_account=account))  # fmt: skip

    mine, root, old = record(B), record(SERVER), record(None)  # old: from before accounts
    anonymous = to_record(Call(time=1.0, method="GET", path="/x"))
    assert mine["userIdentity"]["accountId"] == B
    assert "accountId" not in old["userIdentity"]
    every = (mine, root, old, anonymous)
    with tenancy.acting_as(B):
        where = LookupFilter(account_id=lookup_account())
    assert [where.matches(r) for r in every] == [True, False, False, False]
    for everyone in (tenancy.ROOT, None):
        with tenancy.acting_as(everyone):
            where = LookupFilter(account_id=lookup_account())
        assert [where.matches(r) for r in every] == [True, True, True, True]


def test_the_audit_middleware_stamps_the_principals_account() -> None:
    def account_of(principal: Principal, server: str = SERVER) -> str | None:
        call = Call(time=1.0, method="GET", path="/x")
        _who_and_what(call, {}, {"principal": principal}, server)
        return to_record(call)["userIdentity"].get("accountId")  # type: ignore[no-any-return]

    assert account_of(Principal(key_id="k", name="b", account=B)) == B
    assert account_of(Principal(key_id="k", name="r")) == SERVER
    assert account_of(Principal(key_id="k", name="r"), "") is None  # the server's id unknown
    nobody = Call(time=1.0, method="GET", path="/x")
    _who_and_what(nobody, {}, {}, SERVER)
    assert to_record(nobody)["userIdentity"] is None


def test_only_the_servers_own_account_verifies_the_whole_trail(lcp: LocalControlPlane) -> None:
    async def verify_as(account: str | None) -> Any:
        with tenancy.acting_as(account):
            return await verify_trail(lcp.plane)

    with pytest.raises(PermissionDeniedError, match="VerifyAuditTrail"):
        asyncio.run(verify_as(B))
    for allowed in (tenancy.ROOT, None):
        try:
            asyncio.run(verify_as(allowed))
        except ConflictError as e:  # the trail is off on this plane: past the account check
            assert "ORCH_AUDIT__ENABLED" in e.message


# --- the REST traffic routes ------------------------------------------------------------------
def test_another_accounts_endpoint_traffic_answers_as_an_absent_endpoints(
    lcp: LocalControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    _endpoint_with_traffic(lcp)
    owned(lcp, ep=A)
    with tenancy.acting_as(A):
        assert _own(lcp.plane, "ep") == "ep"
    with tenancy.acting_as(B):
        assert _own(lcp.plane, "ep") == _own(lcp.plane, "no-such") == ""
    with tenancy.acting_as(tenancy.ROOT):  # the operator's key: the autoscaler reads them all
        assert _own(lcp.plane, "ep") == "ep"
    assert lcp.plane.series is not None
    assert lcp.plane.series.variant_load("", "v1", "c", 600, lcp.plane.clock.now()) == (
        lcp.plane.series.variant_load("no-such", "v1", "c", 600, lcp.plane.clock.now())
    )


# --- named KMS keys ---------------------------------------------------------------------------
def test_a_named_key_is_its_accounts_to_list_and_name(tmp_path: Path) -> None:
    ring = LocalKeyring(tmp_path / "keys" / "keyring.json")
    with tenancy.acting_as(A):
        key = ring.create_key("payments")
        assert [k.key_id for k in ring.list_keys()] == [key.key_id]
        assert ring.check_key("alias/payments") == key.key_id
    assert key.account == A
    with tenancy.acting_as(B):
        assert ring.list_keys() == []
        answers = []
        for ref in (key.key_id, "alias/payments", "mk-00000000-0000-0000-0000-000000000000",
                    "alias/nobody"):  # fmt: skip
            with pytest.raises(ValidationError) as e:
                ring.check_key(ref)
            answers.append(e.value.message.replace(ref, "REF"))
        assert len(set(answers)) == 1
        with pytest.raises(ConflictError, match="Alias"):  # aliases are server-wide
            ring.create_key("payments")
    assert [k.key_id for k in ring.list_keys()] == [key.key_id]  # the system
    # sealed under A's key, an object still opens whoever's request reads it (the bucket
    # decides who may): unwrapping by id is not filtered
    with tenancy.acting_as(A):
        key_id, wrapped = ring.wrap(b"k" * 32, b"aad", key="alias/payments")
    with tenancy.acting_as(B):
        assert ring.unwrap(key_id, wrapped, b"aad") == b"k" * 32


def test_a_named_keys_file_from_before_accounts_is_the_servers(tmp_path: Path) -> None:
    ring = LocalKeyring(tmp_path / "keys" / "keyring.json")
    key = ring.create_key("old")
    named = ring.path.with_name("keyring-named.json")
    doc = json.loads(named.read_text())
    assert "account" not in doc["keys"][key.key_id]  # the server's: written as before
    fresh = LocalKeyring(ring.path)
    with tenancy.acting_as(tenancy.ROOT):
        assert [k.alias for k in fresh.list_keys()] == ["old"]
    with tenancy.acting_as(B):
        assert fresh.list_keys() == []


def test_an_endpoints_rollback_alarms_are_read_as_its_own_account(
    lcp: LocalControlPlane,
) -> None:
    reconciler = lcp.controller.reconciler
    alarms = lcp.plane.alarms
    assert alarms is not None
    with tenancy.acting_as(A):
        alarms.put(alarm("rollback"))
    rollback = SimpleNamespace(AlarmName="rollback", MetricName=None)
    spec = SimpleNamespace(DeploymentConfig=SimpleNamespace(alarms=[rollback]))
    status = SimpleNamespace(Deployment=object())
    read = reconciler._alarm_states
    assert read(spec, status, A) == {"rollback": "INSUFFICIENT_DATA"}  # type: ignore[arg-type]
    assert read(spec, status, B) == {}  # type: ignore[arg-type]


# --- logs of resources ------------------------------------------------------------------------
def _absent(call: Any) -> tuple[str, str]:
    with pytest.raises(AwsError) as e:
        call()
    return e.value.aws_code, e.value.message


def test_another_accounts_endpoint_and_job_logs_are_absent(
    lcp: LocalControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = lcp.client
    c.create_model(ModelName="m", PrimaryContainer={"Image": "example/serve:1"})
    c.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{"VariantName": "v1", "ModelName": "m"}]
    )
    c.create_endpoint(EndpointName="ep", EndpointConfigName="c")
    lcp.backend.write_replica_log("ep", "v1-0-1", "model loaded\n")
    c.create_training_job(training_job_spec("j", source=_source(lcp)))
    lcp.controller.run_pass()
    lcp.backend.write_log("j", "epoch 1\n")
    owned(lcp, ep=A, j=A)
    logs = Logs(lcp.plane)
    group = "/aws/sagemaker/Endpoints/ep"
    with tenancy.acting_as(A):
        [stream] = logs.describe_log_streams({"logGroupName": TRAINING}, WHO)["logStreams"]
        job_stream = stream["logStreamName"]
        read = {"logGroupName": TRAINING, "logStreamName": job_stream, "startFromHead": True}
        assert [e["message"] for e in logs.get_log_events(read, WHO)["events"]] == ["epoch 1"]
        out = logs.filter_log_events({"logGroupName": group}, WHO)
        assert [e["message"] for e in out["events"]] == ["model loaded"]
        listed = {g["logGroupName"] for g in logs.describe_log_groups({}, WHO)["logGroups"]}
        assert {group, TRAINING} <= listed
    with tenancy.acting_as(B):
        listed = {g["logGroupName"] for g in logs.describe_log_groups({}, WHO)["logGroups"]}
        assert not {group, TRAINING} & listed
        for op in (logs.describe_log_streams, logs.filter_log_events):
            assert _absent(lambda op=op: op({"logGroupName": group}, WHO)) == _absent(
                lambda op=op: op({"logGroupName": "/aws/sagemaker/Endpoints/nope"}, WHO)
            )
        assert _absent(lambda: logs.get_log_events(read, WHO)) == (
            "ResourceNotFoundException", "The specified log group does not exist."
        )  # fmt: skip
    assert logs.get_log_events(read, WHO)["events"]  # the system


def _source(lcp: LocalControlPlane) -> str:
    uri = "s3://orchestrator/code/sourcedir.tar.gz"
    lcp.plane.objects.put_bytes(uri, tarball({"train.py": "print('hi')\n"}))
    return uri


def test_the_usage_report_holds_the_callers_accounts_resources_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.usage.test_usage_report import T0, run_timeline

    clock = FakeClock(T0)
    with local_control_plane(tmp_path, clock=clock, usage_flush_seconds=3600) as cp:
        run_timeline(cp, clock)  # ends with the endpoint "ep" deleted: the server's own
        owned(cp, **{"train-a": A, "tj": A})
        store, prices = cp.plane.store, PriceTable()

        def report() -> set[str]:
            day = T0 + timedelta(days=1)
            return {g.Group for g in usage_report(store, prices, T0, day, "resource").Groups}

        everything = {"TrainingJob/train-a", "TrainingJob/train-spot", "TransformJob/tj",
                      "Endpoint/ep/main"}  # fmt: skip
        assert report() == everything  # the system
        with tenancy.acting_as(A):
            assert report() == {"TrainingJob/train-a", "TransformJob/tj"}
        with tenancy.acting_as(tenancy.ROOT):
            assert report() == {"TrainingJob/train-spot", "Endpoint/ep/main"}
        with tenancy.acting_as(B):
            assert report() == set()


def test_the_rest_metrics_of_another_accounts_endpoint_are_404_as_an_absent_ones(
    lcp: LocalControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    t0 = _endpoint_with_traffic(lcp)
    owned(lcp, ep=A)
    request: Any = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(
        series=lcp.plane.series)))  # fmt: skip

    def sums(name: str) -> list[float | None]:
        answer = endpoint_metrics(name, request, lcp.plane, metric_name="Invocations",
                                  start_time=str(t0.timestamp()),
                                  end_time=str(t0.timestamp() + 120))  # fmt: skip
        return [p.Sum for p in answer.Datapoints]

    with tenancy.acting_as(A):
        assert sums("ep") == [60.0, 60.0]
    for other in (B, tenancy.ROOT):
        with tenancy.acting_as(other):
            answers = []
            for name in ("ep", "nope"):
                with pytest.raises(NotFoundError) as e:
                    sums(name)
                answers.append(e.value.message.replace(name, "N"))
            assert answers[0] == answers[1]
