"""The price table (defaults, a YAML or JSON file, malformed files named with line or field) and
the pure computation: instance-seconds over count changes, spot savings, grouping and pricing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.errors import ValidationError
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.usage import (
    DEFAULT_PRICES,
    CountChange,
    PriceTable,
    endpoint_usage,
    group_usage,
    instance_seconds,
    load_price_table,
    training_usage,
    transform_usage,
)

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_the_defaults_price_every_known_instance_type() -> None:
    assert set(DEFAULT_PRICES) == set(INSTANCE_TYPES)
    table = load_price_table(None)
    assert table.source == "defaults, shaped like SageMaker's on-demand prices"
    assert table.cost("ml.m5.large", 3600) == pytest.approx(0.115)
    assert table.cost("ml.m5.large", 3600, spot=True) == pytest.approx(0.115 * 0.3)


def test_a_yaml_and_a_json_price_file(tmp_path: Path) -> None:
    yml = tmp_path / "prices.yaml"
    yml.write_text("spot_discount: 0.5\nprices:\n  ml.m5.large: 1.0\n")
    table = load_price_table(yml)
    assert table.cost("ml.m5.large", 1800) == pytest.approx(0.5)
    assert table.cost("ml.m5.large", 1800, spot=True) == pytest.approx(0.25)
    assert table.hourly("ml.c5.large") is None  # not in the file: no price, none invented
    js = tmp_path / "prices.json"
    js.write_text('{"prices": {"ml.c5.large": 2}}')
    assert load_price_table(js).cost("ml.c5.large", 3600) == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("bad.yaml", "prices:\n  ml.m5.large: [1\n", "line 3"),
        ("bad.json", '{"prices":\n {"ml.m5.large": }}', "line 2"),
        ("value.yaml", "prices:\n  ml.m5.large: cheap\n", "prices.ml.m5.large must be a number"),
        ("neg.yaml", "prices:\n  ml.m5.large: -1\n", "prices.ml.m5.large must be 0 or more"),
        ("spot.yaml", "spot_discount: 1.5\n", "spot_discount must be between 0 and 1"),
        ("field.yaml", "price:\n  ml.m5.large: 1\n", "unknown field 'price'"),
        ("list.yaml", "- 1\n", "must be a mapping"),
        ("prices.yaml", "prices: 3\n", "'prices' must map instance types"),
    ],
)
def test_a_malformed_price_file_is_named_with_its_line_or_field(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValidationError) as e:
        load_price_table(path)
    assert str(path) in e.value.message and expected in e.value.message, e.value.message


def test_a_missing_price_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as e:
        load_price_table(tmp_path / "nope.yaml")
    assert "ORCH_USAGE_PRICE_FILE" in e.value.message and "nope.yaml" in e.value.message


def test_instance_seconds_over_changes_clipped_to_the_window() -> None:
    changes = [
        CountChange("e", "v", 1, at(0)),
        CountChange("e", "v", 3, at(10)),
        CountChange("e", "v", 0, at(20)),
        CountChange("e", "v", 2, at(40)),
    ]
    assert instance_seconds(changes, at(0), at(50)) == 10 + 30 + 20
    assert instance_seconds(changes, at(5), at(15)) == 5 + 15
    assert instance_seconds(changes, at(20), at(40)) == 0  # scaled to zero
    assert instance_seconds(list(reversed(changes)), at(0), at(50)) == 60  # any order


def test_an_endpoint_variant_split_by_the_instance_type_each_change_recorded() -> None:
    changes = [
        CountChange("e", "v", 1, at(0), "ml.m5.large"),
        CountChange("e", "v", 1, at(100), "ml.c5.large"),
    ]
    got = endpoint_usage(
        name="e", tenant="t", variants={}, changes=changes, predictions={"v": 7},
        since=at(0), until=at(150),
    )  # fmt: skip
    assert [(u.instance_type, u.instance_seconds, u.predictions) for u in got] == [
        ("ml.c5.large", 50, 7),
        ("ml.m5.large", 100, 0),
    ]


def test_spot_savings_are_training_minus_billable_time() -> None:
    u = training_usage(
        name="j", tenant="t", instance_type="ml.m5.large", instance_count=2, spot=True,
        end=at(10), training_seconds=300, billable_seconds=250, since=at(0), until=at(60),
    )  # fmt: skip
    assert u is not None
    assert (u.billable_seconds, u.spot_saved_seconds) == (500, 100)
    (row,) = group_usage([u], "resource", PriceTable())
    on_demand = DEFAULT_PRICES["ml.m5.large"] * 600 / 3600
    assert row.cost == pytest.approx(DEFAULT_PRICES["ml.m5.large"] * 0.3 * 500 / 3600)
    assert row.spot_savings == pytest.approx(on_demand - row.cost)
    # Ended outside the window: not counted there.
    late = training_usage(
        name="j", tenant="t", instance_type="ml.m5.large", instance_count=2, spot=True,
        end=at(60), training_seconds=300, billable_seconds=250, since=at(0), until=at(60),
    )  # fmt: skip
    assert late is None


def test_a_type_without_a_price_says_so() -> None:
    u = transform_usage(
        name="t", tenant="x", instance_type="ml.m5.large", instance_count=1,
        start=at(0), end=None, since=at(0), until=at(30),
    )  # fmt: skip
    assert u is not None and u.instance_seconds == 30  # running: up to the window's end
    (row,) = group_usage([u], "instance-type", PriceTable(prices={}))
    assert (row.group, row.priced, row.no_price) == ("ml.m5.large", False, ["ml.m5.large"])
    free = transform_usage(
        name="f", tenant="x", instance_type="local", instance_count=1,
        start=at(0), end=at(10), since=at(0), until=at(30),
    )  # fmt: skip
    assert free is not None
    (mixed,) = group_usage([u, free], "tenant", PriceTable(prices={"local": 0.0}))
    assert (mixed.cost, mixed.priced, mixed.no_price) == (0.0, True, ["ml.m5.large"])


def test_the_series_counts_predictions_only_for_a_flusher() -> None:
    from orchestrator.monitoring.series import SeriesStore

    series = SeriesStore()
    series.record_invocation("e", "v", "c", status=200, model_us=1.0, overhead_us=1.0, at=7300.5)
    assert series.drain_prediction_counts() == {}  # nobody drains: nothing kept
    series.count_predictions()
    for t in (7300.5, 7999.0, 10800.0):
        series.record_invocation("e", "v", "c", status=500, model_us=None, overhead_us=None, at=t)
    assert series.drain_prediction_counts() == {("e", "v", 7200.0): 2, ("e", "v", 10800.0): 1}
    assert series.drain_prediction_counts() == {}
