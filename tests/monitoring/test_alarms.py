"""Metric alarms end to end on a local control plane (fake clock): put, evaluate from the
series, history, actions (signed webhooks with retries, stop a job, scale a variant), the REST
routes' bad input, the CloudWatch operations."""

from __future__ import annotations

import hashlib
import hmac
import json
import shlex
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import metrics
from orchestrator.access import Principal
from orchestrator.api.alarms import SIGNATURE_HEADER, Alarms, Change
from orchestrator.api.aws.cloudwatch import CloudWatchService
from orchestrator.api.aws.errors import AwsError
from orchestrator.cli import app
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.resources.alarms import MetricAlarm
from orchestrator.testing import FakeClock, LocalControlPlane, local_control_plane

ADMIN = Principal(key_id="k", name="t", role="admin")
SECRET = "test-webhook-secret"
DIMS = [{"Name": "Service", "Value": "checkout"}]
SETTINGS: dict[str, Any] = {
    "webhook_secret": SECRET,
    "allow_private_webhooks": True,
    "webhook_backoff_seconds": 0.01,
    "webhook_timeout_seconds": 0.3,
    "webhook_attempts": 3,
}


def spec(name: str = "errors-high", **fields: Any) -> dict[str, Any]:
    return {
        "AlarmName": name, "Namespace": "MyApp", "MetricName": "errors", "Dimensions": DIMS,
        "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 1, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold", **fields,
    }  # fmt: skip


@pytest.fixture
def lcp(tmp_path: Path) -> Iterator[LocalControlPlane]:
    with local_control_plane(tmp_path, clock=FakeClock(), alarms=SETTINGS) as plane:
        assert plane.plane.alarms is not None
        plane.plane.alarms.stop()  # the test drives evaluation; actions run inline
        yield plane


def alarms_of(lcp: LocalControlPlane) -> Alarms:
    assert lcp.plane.alarms is not None
    return lcp.plane.alarms


class Hook:
    """A local webhook receiver: records each POST; ``delay`` makes it time out."""

    def __init__(self, delay: float = 0.0, status: int = 200) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                hook.requests.append((dict(self.headers), body))
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:  # the sender gave up (timed out)
                    pass

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def put_errors(lcp: LocalControlPlane, value: float) -> None:
    lcp.client.put_metric_data("MyApp", [{"MetricName": "errors", "Value": value,
                                          "Dimensions": DIMS,
                                          "Timestamp": lcp.plane.clock.now()}])  # fmt: skip


def test_an_alarm_on_a_metric_that_does_not_exist_is_insufficient_data(
    lcp: LocalControlPlane,
) -> None:
    out = lcp.client.put_metric_alarm(spec(MetricName="no-such-metric"))
    assert out.StateValue == "INSUFFICIENT_DATA"
    alarms_of(lcp).evaluate_all()
    [a] = lcp.client.describe_alarms().MetricAlarms
    assert a.StateValue == "INSUFFICIENT_DATA"
    # an endpoint metric of an endpoint that does not exist: the same
    lcp.client.put_metric_alarm(spec("ep", Namespace="AWS/SageMaker", MetricName="Invocations",
        Dimensions=[{"Name": "EndpointName", "Value": "nope"},
                    {"Name": "VariantName", "Value": "AllTraffic"}]))  # fmt: skip
    assert alarms_of(lcp).evaluate_all() == 0
    assert lcp.client.describe_alarms(names=["ep"]).MetricAlarms[0].StateValue == (
        "INSUFFICIENT_DATA"
    )


def test_user_metric_crosses_then_recovers_with_history_and_a_signed_webhook(
    lcp: LocalControlPlane,
) -> None:
    hook = Hook()
    try:
        lcp.client.put_metric_alarm(spec(AlarmActions=[hook.url], OKActions=[hook.url]))
        clock = lcp.plane.clock
        assert isinstance(clock, FakeClock)
        clock.advance(5)
        put_errors(lcp, 5.0)
        clock.advance(60)
        assert alarms_of(lcp).evaluate_all() == 1
        [a] = lcp.client.describe_alarms(state="ALARM").MetricAlarms
        assert a.StateReason.startswith(
            "Threshold Crossed: 1 out of the last 1 datapoint [5 (01/01/26 00:00:00)] was "
            "greater than the threshold (1)"
        )
        assert json.loads(a.StateReasonData or "{}")["recentDatapoints"] == [5.0]
        assert alarms_of(lcp).evaluate_all() == 0  # no change, no second action
        [(headers, body)] = hook.requests
        mac = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert headers[SIGNATURE_HEADER] == mac
        sent = json.loads(body)
        assert (sent["AlarmName"], sent["OldStateValue"], sent["NewStateValue"]) == (
            "errors-high",
            "INSUFFICIENT_DATA",
            "ALARM",
        )
        assert sent["Trigger"]["MetricName"] == "errors"
        # the next period is quiet: OK
        put_errors(lcp, 0.0)
        clock.advance(60)
        assert alarms_of(lcp).evaluate_all() == 1
        assert lcp.client.describe_alarms().MetricAlarms[0].StateValue == "OK"
        items = lcp.client.describe_alarm_history("errors-high").AlarmHistoryItems
        kinds = [(i.HistoryItemType, i.HistorySummary) for i in items]
        assert kinds[-1] == ("ConfigurationUpdate", 'Alarm "errors-high" created')
        states = [s for t, s in kinds if t == "StateUpdate"]
        assert states == ["Alarm updated from ALARM to OK",
                          "Alarm updated from INSUFFICIENT_DATA to ALARM"]  # fmt: skip
        actions = [i for i in items if i.HistoryItemType == "Action"]
        assert len(actions) == 2
        assert all(json.loads(i.HistoryData)["actionState"] == "Succeeded" for i in actions)
        only = lcp.client.describe_alarm_history("errors-high", item_type="StateUpdate")
        assert len(only.AlarmHistoryItems) == 2
    finally:
        hook.close()


def test_a_webhook_that_times_out_is_retried_then_recorded_failed_without_blocking(
    lcp: LocalControlPlane,
) -> None:
    hook = Hook(delay=1.0)
    alarms = alarms_of(lcp)
    alarms.actions.start()  # a worker thread, as in the server
    try:
        lcp.client.put_metric_alarm(spec(AlarmActions=[hook.url]))
        started = time.monotonic()
        lcp.client.set_alarm_state("errors-high", "ALARM", "testing the action")
        put_errors(lcp, 5.0)
        assert isinstance(lcp.plane.clock, FakeClock)
        lcp.plane.clock.advance(60)
        alarms.evaluate_all()  # the evaluator goes on while the webhook is retried
        assert time.monotonic() - started < 0.3 * 2
        alarms.actions.drain()
        assert len(hook.requests) == 3  # webhook_attempts
        [action] = lcp.client.describe_alarm_history(
            "errors-high", item_type="Action"
        ).AlarmHistoryItems
        data = json.loads(action.HistoryData)
        assert data["actionState"] == "Failed"
        assert "ReadTimeout" in data["detail"] and "3 attempt(s)" in data["detail"]
        failed = metrics.ALARM_ACTIONS.labels(kind="webhook", outcome="failed")._value.get()
        assert failed >= 1
        assert action.HistorySummary.startswith("Failed to execute action")
    finally:
        alarms.actions.stop()
        hook.close()


def test_a_webhook_refusing_with_4xx_is_not_retried(lcp: LocalControlPlane) -> None:
    hook = Hook(status=410)
    try:
        lcp.client.put_metric_alarm(spec(AlarmActions=[hook.url]))
        lcp.client.set_alarm_state("errors-high", "ALARM", "testing")
        assert len(hook.requests) == 1
        [action] = lcp.client.describe_alarm_history("errors-high", item_type="Action")\
            .AlarmHistoryItems  # fmt: skip
        assert "HTTP 410" in json.loads(action.HistoryData)["detail"]
    finally:
        hook.close()


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"Period": 45}, "Period"),
        ({"Threshold": "abc"}, "Threshold"),
        ({"DatapointsToAlarm": 2}, "DatapointsToAlarm"),
        ({"Metrics": [{"Id": "e", "Expression": "m1+m2"}]}, "Metrics"),
    ],
)
def test_rest_bad_input_is_400_naming_the_field(
    lcp: LocalControlPlane, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as e:
        lcp.client.put_metric_alarm(spec(**fields))
    assert e.value.field == field
    assert field in e.value.message


def test_webhooks_to_private_addresses_are_refused(tmp_path: Path) -> None:
    with local_control_plane(
        tmp_path, clock=FakeClock(), alarms={"webhook_secret": SECRET}
    ) as plane:
        for url in ("https://127.0.0.1/x", "https://10.0.0.8/x", "https://169.254.169.254/",
                    "https://localhost/hook", "https://[::1]/", "http://hooks.example.com/"):  # fmt: skip
            with pytest.raises(ValidationError) as e:
                plane.client.put_metric_alarm(spec(AlarmActions=[url]))
            assert e.value.field == "AlarmActions", url
        with pytest.raises(ValidationError) as e:
            plane.client.put_metric_alarm(spec(OKActions=["https://192.168.1.1/"]))
        assert e.value.field == "OKActions"
        assert plane.client.describe_alarms().MetricAlarms == []


def test_a_webhook_needs_the_signing_secret(tmp_path: Path) -> None:
    with (
        local_control_plane(tmp_path, clock=FakeClock()) as plane,
        pytest.raises(ValidationError, match="ORCH_ALARMS__WEBHOOK_SECRET"),
    ):
        plane.client.put_metric_alarm(spec(AlarmActions=["https://hooks.example.com/x"]))


def test_set_state_delete_and_unknown_names(lcp: LocalControlPlane) -> None:
    lcp.client.put_metric_alarm(spec())
    lcp.client.put_metric_alarm(spec("other"))
    out = lcp.client.set_alarm_state("errors-high", "ALARM", "by hand")
    assert (out.StateValue, out.StateReason) == ("ALARM", "by hand")
    assert [a.AlarmName for a in lcp.client.describe_alarms(prefix="err").MetricAlarms] == [
        "errors-high"
    ]
    with pytest.raises(ValidationError, match="StateValue"):
        lcp.client.describe_alarms(state="RED")
    with pytest.raises(NotFoundError):
        lcp.client.set_alarm_state("nope", "OK", "x")
    # an update keeps the state and records a ConfigurationUpdate
    lcp.client.put_metric_alarm(spec(Threshold=2.0))
    [a] = lcp.client.describe_alarms(names=["errors-high"]).MetricAlarms
    assert (a.StateValue, a.Threshold) == ("ALARM", 2.0)
    assert lcp.client.describe_alarm_history("errors-high").AlarmHistoryItems[0].HistorySummary \
        == 'Alarm "errors-high" updated'  # fmt: skip
    assert lcp.client.delete_alarms(["errors-high", "other"]) == 2
    assert lcp.client.describe_alarms().MetricAlarms == []


def test_stop_training_job_and_scale_variant_actions(lcp: LocalControlPlane) -> None:
    calls: list[tuple[str, Any]] = []
    cp = lcp.plane

    def stop(name: str) -> None:
        calls.append(("stop", name))

    def scale(name: str, req: Any) -> str:
        calls.append(("scale", (name, req.DesiredWeightsAndCapacities[0].model_dump())))
        return name

    cp.stop_training_job = stop  # type: ignore[method-assign]
    cp.update_endpoint_weights_and_capacities = scale  # type: ignore[method-assign]
    alarm = MetricAlarm.model_validate(spec(AlarmActions=[
        "arn:aws:sagemaker:us-east-1:000000000000:action/stop-training-job/job-1",
        "arn:aws:sagemaker:us-east-1:000000000000:action/scale-variant/ep-1/AllTraffic/3",
    ]))  # fmt: skip
    alarms_of(lcp).store.put(alarm, 0.0)
    alarms_of(lcp).actions.run(Change(alarm, "OK", "ALARM", "r", 0.0))
    assert calls[0] == ("stop", "job-1")
    assert calls[1] == ("scale", ("ep-1", {"VariantName": "AllTraffic", "DesiredWeight": None,
                                           "DesiredInstanceCount": 3}))  # fmt: skip


def test_a_failing_action_is_recorded_not_raised(lcp: LocalControlPlane) -> None:
    lcp.client.put_metric_alarm(spec(AlarmActions=[
        "arn:aws:sagemaker:us-east-1:000000000000:action/stop-training-job/no-such-job"
    ]))  # fmt: skip
    lcp.client.set_alarm_state("errors-high", "ALARM", "by hand")
    [action] = lcp.client.describe_alarm_history("errors-high", item_type="Action")\
        .AlarmHistoryItems  # fmt: skip
    data = json.loads(action.HistoryData)
    assert data["actionState"] == "Failed" and "no-such-job" in data["detail"]


def test_cloudwatch_operations(lcp: LocalControlPlane) -> None:
    ops = CloudWatchService(lcp.plane).operations
    ops["PutMetricAlarm"].handler(spec(), ADMIN)
    # the query protocol's strings
    ops["PutMetricAlarm"].handler(
        {**spec("q"), "Threshold": "2.5", "Period": "60", "EvaluationPeriods": "1"}, ADMIN
    )
    found = ops["DescribeAlarms"].handler({"AlarmNamePrefix": "q"}, ADMIN)["MetricAlarms"]
    assert [(a["AlarmName"], a["Threshold"]) for a in found] == [("q", 2.5)]
    ops["SetAlarmState"].handler(
        {"AlarmName": "q", "StateValue": "ALARM", "StateReason": "x"}, ADMIN
    )
    assert (
        ops["DescribeAlarms"].handler({"StateValue": "ALARM"}, ADMIN)["MetricAlarms"][0][
            "AlarmName"
        ]
        == "q"
    )
    items = ops["DescribeAlarmHistory"].handler({"AlarmName": "q"}, ADMIN)["AlarmHistoryItems"]
    assert items[0]["HistoryItemType"] == "StateUpdate"
    with pytest.raises(AwsError) as e:
        ops["PutMetricAlarm"].handler({**spec(), "Period": "45"}, ADMIN)
    assert e.value.aws_code == "InvalidParameterValue" and "Period" in e.value.message
    with pytest.raises(AwsError) as e:
        ops["PutMetricAlarm"].handler({**spec(), "Threshold": "high"}, ADMIN)
    assert "Threshold" in e.value.message
    with pytest.raises(AwsError) as e:
        ops["DeleteAlarms"].handler({"AlarmNames": ["q", "nope"]}, ADMIN)
    assert e.value.aws_code == "ResourceNotFound"
    ops["DeleteAlarms"].handler({"AlarmNames": ["q", "errors-high"]}, ADMIN)
    assert ops["DescribeAlarms"].handler({}, ADMIN)["MetricAlarms"] == []


def test_the_evaluator_service_runs_by_itself(tmp_path: Path) -> None:
    with local_control_plane(tmp_path, alarms={"evaluation_seconds": 0.05}) as plane:
        alarms = alarms_of(plane)
        plane.client.put_metric_alarm(spec(TreatMissingData="breaching"))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if plane.client.describe_alarms().MetricAlarms[0].StateValue == "ALARM":
                break
            time.sleep(0.05)
        assert plane.client.describe_alarms().MetricAlarms[0].StateValue == "ALARM"
        assert alarms.passes >= 1
        assert alarms.interval() == pytest.approx(0.05)


def test_the_docs_receiver_verifies_a_signed_body(lcp: LocalControlPlane) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "alarms.md").read_text()
    verifier = doc.split("```python\nimport hashlib, hmac\n", 1)[1].split("```", 1)[0]
    scope: dict[str, Any] = {}
    exec("import hashlib, hmac\n" + verifier, scope)  # the page's own receiver code
    hook = Hook()
    try:
        lcp.client.put_metric_alarm(spec(AlarmActions=[hook.url]))
        lcp.client.set_alarm_state("errors-high", "ALARM", "docs")
        [(headers, body)] = hook.requests
        assert scope["verify"](SECRET.encode(), body, headers[SIGNATURE_HEADER])
        assert not scope["verify"](b"other", body, headers[SIGNATURE_HEADER])
    finally:
        hook.close()


def test_the_docs_cli_example_runs(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "alarms.md").read_text()
    block = doc.split("```bash\n", 1)[1].split("```", 1)[0].replace("\\\n", " ")
    with local_control_plane(tmp_path, clock=FakeClock()) as plane:
        for line in block.splitlines():
            args = shlex.split(line, comments=True)[1:]  # without "orch"
            result = CliRunner().invoke(
                app, ["--endpoint-url", plane.url, "--api-key", plane.api_key, *args]
            )
            assert result.exit_code == 0, (line, result.output)


def test_endpoint_updates_read_the_states_of_alarms_named_alone(lcp: LocalControlPlane) -> None:
    from orchestrator.resources.endpoints import UpdateEndpointRequest

    controller = lcp.plane.controller
    assert controller is not None and controller.reconciler.alarm_states is not None
    lcp.client.put_metric_alarm(spec("ep-5xx"))
    lcp.client.set_alarm_state("ep-5xx", "ALARM", "drill")
    assert controller.reconciler.alarm_states(["ep-5xx", "other"]) == {"ep-5xx": "ALARM"}
    # a name with no such alarm is refused at UpdateEndpoint, naming the field
    req = UpdateEndpointRequest.model_validate({
        "EndpointConfigName": "cfg",
        "DeploymentConfig": {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "nope"}]}},
    })  # fmt: skip
    with pytest.raises(ValidationError) as e:
        lcp.plane._check_rollback_alarms(req)
    assert e.value.field == "DeploymentConfig.AutoRollbackConfiguration.Alarms"
    assert "'nope'" in e.value.message
