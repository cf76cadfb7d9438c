"""``orch alarms``: put from options, list with states, set-state, history, delete, and a bad
Period refused naming it."""

from __future__ import annotations

from cli_harness import Cli


def test_put_list_set_state_history_delete(cli: Cli) -> None:
    out = cli.ok(
        "alarms", "put", "lat", "--namespace", "MyApp", "--metric", "latency",
        "--dimension", "Service=checkout", "--statistic", "p99", "--period", "60",
        "--evaluation-periods", "3", "--datapoints-to-alarm", "2",
        "--comparison", "GreaterThanThreshold", "--threshold", "250",
    ).stdout  # fmt: skip
    assert "INSUFFICIENT_DATA" in out and "p99 > 250 for 2 of 3 x 60s" in out
    listed = cli.ok("alarms", "list").stdout
    assert "lat" in listed and "MyApp/latency" in listed and "Service=checkout" in listed
    assert "ALARM" in cli.ok("alarms", "set-state", "lat", "ALARM", "--reason", "drill").stdout
    body = cli.json("alarms", "list", "--state", "ALARM")
    assert [a["AlarmName"] for a in body["MetricAlarms"]] == ["lat"]
    assert body["MetricAlarms"][0]["StateReason"] == "drill"
    hist = cli.ok("alarms", "history", "lat").stdout
    assert "Alarm updated from INSUFFICIENT_DATA to ALARM" in hist
    assert "ConfigurationUpdate" in hist
    assert "deleted 1 alarm(s)" in cli.ok("alarms", "delete", "lat").stdout
    assert "no alarms" in cli.ok("alarms", "list").stdout


def test_a_bad_period_is_refused_naming_it(cli: Cli) -> None:
    result = cli(
        "alarms", "put", "x", "--namespace", "N", "--metric", "m", "--statistic", "Sum",
        "--period", "45", "--evaluation-periods", "1", "--comparison", "LessThanThreshold",
        "--threshold", "1",
    )  # fmt: skip
    assert result.exit_code != 0
    assert "Period" in result.output and "multiple of 60" in result.output
