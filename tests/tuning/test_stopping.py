"""The median rule and Hyperband's rungs over objective series by epoch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.tuning.stopping import Curve, Point, brackets, hyperband, median_rule, rungs

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def curve(
    name: str, *values: float, running: bool = False, start: int = 0, bracket: int = 0
) -> Curve:
    points = tuple(Point(i + 1, v, T0 + timedelta(seconds=start + i)) for i, v in enumerate(values))
    return Curve(name, points, running, bracket)


def test_median_rule_needs_peers_and_two_reports() -> None:
    done = [curve(f"d{i}", 0.5, 0.4, 0.3) for i in range(3)]
    assert median_rule([*done, curve("one", 0.9, running=True)], maximize=False) == []
    assert median_rule([*done[:2], curve("r", 0.9, 0.9, running=True)], maximize=False) == []
    [(name, why)] = median_rule([*done, curve("r", 0.9, 0.9, running=True)], maximize=False)
    assert name == "r" and "worse than the median" in why


def test_median_rule_keeps_a_trial_better_than_the_median_and_reads_the_direction() -> None:
    done = [curve(f"d{i}", 0.5, 0.4, 0.3) for i in range(3)]
    assert median_rule([*done, curve("r", 0.5, 0.42, running=True)], maximize=False) == []
    # Maximizing, a low curve is the bad one.
    assert [
        n for n, _ in median_rule([*done, curve("r", 0.1, 0.1, running=True)], maximize=True)
    ] == ["r"]


def test_rungs_and_brackets() -> None:
    assert rungs(1, 81) == [1, 3, 9, 27]
    assert rungs(1, 9) == [1, 3]
    assert brackets(1, 81) == 4 and brackets(5, 5) == 1


def test_hyperband_keeps_the_top_third_of_those_who_got_there_first() -> None:
    first = curve("a", 0.1, running=True, start=0)
    second = curve("b", 0.2, running=True, start=1)
    third = curve("c", 0.05, running=True, start=2)  # best so far when it arrives: goes on
    fourth = curve("d", 0.9, running=True, start=3)
    stopped = [n for n, _ in hyperband([first, second, third, fourth], False, 1, 9)]
    assert stopped == ["d"]
    # Only three have reached epoch 1 of bracket 0: "b" (2nd of 2 before it) is not judged
    # until three are there; a trial of another bracket is compared with its own only.
    other = curve("e", 0.99, running=True, start=4, bracket=1)
    assert "e" not in [n for n, _ in hyperband([first, second, third, fourth, other], False, 1, 9)]


def test_hyperband_stops_a_trial_past_max_resource() -> None:
    long = curve("a", *([0.1] * 10), running=True)
    assert [n for n, _ in hyperband([long], False, 1, 9)] == ["a"]
