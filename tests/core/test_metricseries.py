"""The metric series parser: lines split anywhere, several metrics a line, epochs, caps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.algorithms.hyperparameters import TRAINING_METRICS, metric_definitions
from orchestrator.training.metricseries import MAX_LINE, SeriesParser, epoch_of

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(offset: int) -> datetime:
    """A line's time: one second per byte of offset, so each line's offset is visible."""
    return T0 + timedelta(seconds=offset)


def patterns(**regexes: str) -> list[tuple[str, re.Pattern[str]]]:
    return [(name, re.compile(rx)) for name, rx in regexes.items()]


LOSS_ACC = patterns(loss=r"loss=(\S+)", acc=r"acc=([0-9.]+)")
LOG = b"epoch=1 loss=0.9 acc=0.5\nnoise\nepoch=2 loss=0.7 acc=0.6\nepoch=3 loss=0.4 acc=0.8\n"


def values(p: SeriesParser, name: str) -> list[float]:
    return [pt.value for pt in p.series[name]]


def test_every_value_of_every_metric_with_its_line_time_step_and_epoch() -> None:
    p = SeriesParser(LOSS_ACC)
    p.feed(LOG, at)
    assert values(p, "loss") == [0.9, 0.7, 0.4]
    assert values(p, "acc") == [0.5, 0.6, 0.8]
    loss = p.series["loss"]
    assert [pt.step for pt in loss] == [0, 1, 2]
    assert [pt.epoch for pt in loss] == [1, 2, 3]
    starts = [0, LOG.index(b"epoch=2"), LOG.index(b"epoch=3")]
    assert [pt.timestamp for pt in loss] == [at(s) for s in starts]
    assert p.offset == len(LOG)
    assert p.last()["acc"].value == 0.8


@pytest.mark.parametrize("cut", [1, 2, 3, 5, 7, 11, 64])
def test_chunks_cut_anywhere_give_the_same_series(cut: int) -> None:
    whole = SeriesParser(LOSS_ACC)
    whole.feed(LOG, at)
    pieces = SeriesParser(LOSS_ACC)
    for i in range(0, len(LOG), cut):
        pieces.feed(LOG[i : i + cut], at)
    assert pieces.series == whole.series


def test_a_line_without_its_newline_waits_for_it() -> None:
    p = SeriesParser(LOSS_ACC)
    p.feed(b"loss=0.5\nloss=0.", at)
    assert values(p, "loss") == [0.5]
    p.feed(b"25\n", at)
    assert values(p, "loss") == [0.5, 0.25]
    assert p.series["loss"][1].timestamp == at(len(b"loss=0.5\n"))  # where the line started


@pytest.mark.parametrize(
    ("line", "epoch"),
    [
        ("epoch=3 loss=1", 3),
        ("Epoch 3/10 loss=1", 3),
        ("#epoch: 3 loss=1", 3),
        ("[epoch 12] loss=1", 12),
        ("EPOCH: 7, loss=1", 7),
        ("epochs=100 loss=1", None),
        ("epoch_time=5 loss=1", None),
        ("loss=1", None),
    ],
)
def test_the_epoch_a_line_names(line: str, epoch: int | None) -> None:
    assert epoch_of(line) == epoch
    p = SeriesParser(patterns(loss=r"loss=(\S+)"))
    p.feed(line.encode() + b"\n", at)
    assert p.series["loss"][0].epoch == epoch


def test_builtin_per_epoch_lines_count_epochs_and_evaluations_have_none() -> None:
    builtin = [(d["Name"], re.compile(d["Regex"])) for d in metric_definitions("mlp")]
    p = SeriesParser(builtin, per_epoch=TRAINING_METRICS)
    lines = [f"train:loss={v}\nvalidation:loss={v + 0.1}" for v in (0.9, 0.6, 0.5)]
    p.feed(("\n".join(lines) + "\nvalidation:accuracy=0.93\n").encode(), at)
    assert [pt.epoch for pt in p.series["train:loss"]] == [1, 2, 3]
    assert [pt.epoch for pt in p.series["validation:loss"]] == [1, 2, 3]
    assert p.series["validation:accuracy"][0].epoch is None
    assert values(p, "validation:loss") == pytest.approx([1.0, 0.7, 0.6])


def test_values_that_are_not_finite_numbers_are_no_points_and_take_no_step() -> None:
    p = SeriesParser(patterns(loss=r"loss=(\S+)", bad=r"bad=()"))
    p.feed(b"loss=abc\nloss=nan\nloss=inf\nloss=0.5\nbad=1\nloss=1e-3\n", at)
    assert values(p, "loss") == [0.5, 0.001]
    assert [pt.step for pt in p.series["loss"]] == [0, 1]
    assert "bad" not in p.series  # a regex without a value to read


def test_other_hosts_lines_are_left_out_and_algo_1_s_tag_removed() -> None:
    builtin = [("train:loss", re.compile(r"^train:loss=(\S+)$"))]
    p = SeriesParser(builtin)
    p.feed(b"[algo-1] train:loss=0.5\n[algo-2] train:loss=9\ntrain:loss=0.4\r\n", at)
    assert values(p, "train:loss") == [0.5, 0.4]


def test_points_per_metric_are_capped_keeping_every_kth_and_the_latest() -> None:
    p = SeriesParser(patterns(loss=r"loss=(\S+)"), max_points=8)
    p.feed(b"".join(b"loss=%d\n" % i for i in range(100)), at)
    kept = p.series["loss"]
    assert len(kept) <= 8
    steps = [pt.step for pt in kept]
    assert steps[-1] == 99  # the latest is always there
    stride = steps[1] - steps[0]
    assert steps[:-1] == list(range(0, 100, stride))  # evenly spread from the start
    assert [pt.value for pt in kept] == [float(s) for s in steps]


def test_an_over_long_line_is_dropped_not_buffered() -> None:
    p = SeriesParser(patterns(loss=r"loss=(\S+)"))
    p.feed(b"loss=1 " + b"x" * (MAX_LINE + 10), at)
    p.feed(b"y" * 100 + b"\nloss=2\n", at)
    assert values(p, "loss") == [2.0]


def test_a_cap_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="max_points"):
        SeriesParser([], max_points=1)
