"""The work plan: keys, ranges, their assignment to instances, and ManifestFile parsing."""

from __future__ import annotations

import itertools
import json
import random

import pydantic
import pytest

from orchestrator.errors import PermanentError
from orchestrator.transform.errors import TransformDataError
from orchestrator.transform.records import owned_lines, split_records
from orchestrator.transform.workplan import (
    InputObject,
    ManifestError,
    WorkPlan,
    WorkRange,
    make_plan,
    parse_manifest,
    relative_key,
)


@pytest.mark.parametrize(
    ("uri", "prefix", "key"),
    [
        ("s3://b/in/a/x.csv", "s3://b/in/", "a/x.csv"),
        ("s3://b/in/x.csv", "s3://b/in/", "x.csv"),
        ("s3://b/in/pre-1.csv", "s3://b/in/pre", "pre-1.csv"),
        ("s3://b/in/pre/x.csv", "s3://b/in/pre", "pre/x.csv"),
        ("s3://b/in/x.csv", "s3://b/in/x.csv", "x.csv"),  # one object named exactly
        ("s3://b/x.csv", "s3://b", "x.csv"),  # a bare bucket
        ("s3://b/x.csv", "s3://b/", "x.csv"),
        ("s3://b/p/rel/one", "s3://b/p/", "rel/one"),
    ],
)
def test_relative_key(uri: str, prefix: str, key: str) -> None:
    assert relative_key(uri, prefix) == key


def test_relative_key_outside_the_prefix() -> None:
    with pytest.raises(ValueError, match="s3://c/x is not under the input prefix s3://b/in/"):
        relative_key("s3://c/x", "s3://b/in/")


def test_plan_keys_order_and_outputs() -> None:
    plan = make_plan(
        [("s3://b/in/z.csv", 5), ("s3://b/in/a/x.csv", 7), ("s3://b/in/", 0), ("s3://b/in/a/", 0)],
        "s3://b/in/",
        1,
        100,
        True,
    )
    assert [(o.Key, o.Uri, o.Size) for o in plan.Inputs] == [
        ("a/x.csv", "s3://b/in/a/x.csv", 7),  # sorted by URI; folder markers skipped
        ("z.csv", "s3://b/in/z.csv", 5),
    ]
    assert plan.output_uri(0, "s3://b/out") == "s3://b/out/a/x.csv.out"
    assert plan.output_uri(1, "s3://b/out/") == "s3://b/out/z.csv.out"
    assert plan.total_bytes == 12


def test_splittable_files_are_cut_into_even_ranges_of_at_most_range_bytes() -> None:
    plan = make_plan([("s3://b/in/x", 100)], "s3://b/in/", 1, 40, True)
    assert [(r.Index, r.Start, r.End) for r in plan.ranges_of_file(0)] == [
        (0, 0, 33),
        (1, 33, 66),
        (2, 66, 100),
    ]
    exact = make_plan([("s3://b/in/x", 80)], "s3://b/in/", 1, 40, True)
    assert [(r.Start, r.End) for r in exact.ranges_of_file(0)] == [(0, 40), (40, 80)]


def test_unsplittable_files_and_empty_files_are_one_range() -> None:
    plan = make_plan([("s3://b/in/x", 100), ("s3://b/in/y", 0)], "s3://b/in/", 2, 10, False)
    assert [(r.File, r.Index, r.Start, r.End) for r in plan.Ranges] == [
        (0, 0, 0, 100),
        (1, 0, 0, 0),
    ]
    empty = make_plan([("s3://b/in/y", 0)], "s3://b/in/", 1, 10, True)
    assert [(r.Start, r.End) for r in empty.Ranges] == [(0, 0)]


def test_largest_first_to_the_least_loaded_instance() -> None:
    plan = make_plan(
        [("s3://b/in/a", 50), ("s3://b/in/b", 40), ("s3://b/in/c", 30), ("s3://b/in/d", 20)],
        "s3://b/in/",
        2,
        1000,
        True,
    )
    # 50 -> 0; 40 -> 1; 30 -> 1 (40 < 50); 20 -> 0 (50 < 70).
    assert {plan.Inputs[r.File].Key: r.Instance for r in plan.Ranges} == {
        "a": 0,
        "b": 1,
        "c": 1,
        "d": 0,
    }
    assert [r.File for r in plan.ranges_of(0)] == [0, 3]
    assert [r.File for r in plan.ranges_of(1)] == [1, 2]


def test_equal_loads_go_to_the_instance_with_fewer_ranges_then_the_lowest_index() -> None:
    plan = make_plan([(f"s3://b/in/{i}", 0) for i in range(5)], "s3://b/in/", 3, 10, True)
    assert [r.Instance for r in plan.Ranges] == [0, 1, 2, 0, 1]


def test_one_large_file_is_shared_between_instances() -> None:
    plan = make_plan([("s3://b/in/big.csv", 1000)], "s3://b/in/", 2, 100, True)
    assert len(plan.ranges_of(0)) == len(plan.ranges_of(1)) == 5
    assert sum(r.size for r in plan.ranges_of(0)) == sum(r.size for r in plan.ranges_of(1)) == 500


def test_more_instances_than_ranges_leave_some_idle() -> None:
    plan = make_plan([("s3://b/in/x", 10)], "s3://b/in/", 4, 100, True)
    assert [len(plan.ranges_of(i)) for i in range(4)] == [1, 0, 0, 0]


def test_the_plan_is_deterministic_and_survives_json() -> None:
    rng = random.Random(9)
    objects = [(f"s3://b/in/f{rng.randint(0, 10**6)}", rng.randint(0, 10_000)) for _ in range(30)]
    first = make_plan(objects, "s3://b/in/", 3, 1000, True)
    again = make_plan(list(reversed(objects)), "s3://b/in/", 3, 1000, True)
    assert first == again
    assert WorkPlan.model_validate_json(first.model_dump_json()) == first


def test_random_plans_tile_every_file_and_balance_the_bytes() -> None:
    rng = random.Random(21)
    for _ in range(200):
        count = rng.randint(1, 6)
        range_bytes = rng.randint(1, 500)
        objects = [
            (f"s3://b/in/{i:03d}", rng.choice([0, rng.randint(1, 3000)]))
            for i in range(rng.randint(1, 12))
        ]
        plan = make_plan(objects, "s3://b/in/", count, range_bytes, rng.random() < 0.7)
        for number, obj in enumerate(plan.Inputs):
            ranges = plan.ranges_of_file(number)
            assert ranges[0].Start == 0 and ranges[-1].End == obj.Size
            assert all(a.End == b.Start for a, b in itertools.pairwise(ranges))
            assert [r.Index for r in ranges] == list(range(len(ranges)))
        assert sorted(plan.Ranges, key=lambda r: (r.File, r.Index)) == plan.Ranges
        assert sum(len(plan.ranges_of(i)) for i in range(count)) == len(plan.Ranges)
        loads = [sum(r.size for r in plan.ranges_of(i)) for i in range(count)]
        # Greedy largest-first: no instance carries more than the lightest plus one range.
        assert max(loads) - min(loads) <= max(r.size for r in plan.Ranges)


def test_ranges_of_a_line_file_score_every_line_once() -> None:
    rng = random.Random(4)
    data = b"".join(b"%d,%s\n" % (i, b"x" * rng.randint(0, 30)) for i in range(300))
    plan = make_plan([("s3://b/in/data.csv", len(data))], "s3://b/in/", 3, 97, True)
    lines: list[bytes] = []
    for r in plan.ranges_of_file(0):
        lines += owned_lines(data, r.Start, r.End)
    assert lines == split_records(data, "Line")


@pytest.mark.parametrize(
    ("objects", "words"),
    [
        ([], "no input objects under s3://b/in/"),
        ([("s3://b/in/", 0)], "no input objects"),
        ([("s3://b/in/x", 1), ("s3://b/in/x", 1)], "s3://b/in/x is listed twice"),
    ],
)
def test_plan_errors_name_the_field(objects: list[tuple[str, int]], words: str) -> None:
    with pytest.raises(TransformDataError) as caught:
        make_plan(objects, "s3://b/in/", 1, 10, True)
    assert words in str(caught.value)
    assert caught.value.field == "TransformInput.DataSource.S3DataSource.S3Uri"


@pytest.mark.parametrize(
    ("objects", "prefix", "count", "range_bytes", "words"),
    [
        ([("s3://b/in/x", 1)], "s3://b/in/", 0, 10, "at least one instance"),
        ([("s3://b/in/x", 1)], "s3://b/in/", 1, 0, "at least one byte"),
        ([("s3://b/in/x", -1)], "s3://b/in/", 1, 10, "negative size"),
        ([("s3://c/x", 1)], "s3://b/in/", 1, 10, "is not under the input prefix"),
    ],
)
def test_bad_plan_arguments(
    objects: list[tuple[str, int]], prefix: str, count: int, range_bytes: int, words: str
) -> None:
    with pytest.raises(ValueError, match=words):
        make_plan(objects, prefix, count, range_bytes, True)


def _plan(ranges: list[dict[str, int]], size: int = 10, instances: int = 2) -> WorkPlan:
    return WorkPlan(
        Inputs=[InputObject(Key="x", Uri="s3://b/in/x", Size=size)],
        Ranges=[WorkRange(**r) for r in ranges],
        InstanceCount=instances,
        RangeBytes=10,
    )


@pytest.mark.parametrize(
    ("ranges", "words"),
    [
        ([{"File": 1, "Index": 0, "Start": 0, "End": 10, "Instance": 0}], "names file 1 of 1"),
        ([{"File": 0, "Index": 0, "Start": 0, "End": 10, "Instance": 2}], "names instance 2 of 2"),
        ([{"File": 0, "Index": 0, "Start": 0, "End": 5, "Instance": 0}], "do not cover it"),
        ([], "do not cover it"),
        (
            [
                {"File": 0, "Index": 0, "Start": 0, "End": 5, "Instance": 0},
                {"File": 0, "Index": 1, "Start": 6, "End": 10, "Instance": 0},
            ],
            "do not tile it",
        ),
        (
            [
                {"File": 0, "Index": 0, "Start": 0, "End": 5, "Instance": 0},
                {"File": 0, "Index": 2, "Start": 5, "End": 10, "Instance": 0},
            ],
            "do not tile it",
        ),
    ],
)
def test_a_corrupt_plan_is_refused(ranges: list[dict[str, int]], words: str) -> None:
    with pytest.raises(pydantic.ValidationError, match=words):
        _plan(ranges)


def test_plan_models_are_frozen() -> None:
    plan = make_plan([("s3://b/in/x", 1)], "s3://b/in/", 1, 10, True)
    with pytest.raises(pydantic.ValidationError):
        plan.Ranges[0].Instance = 3  # type: ignore[misc]


# --- ManifestFile -------------------------------------------------------------------------
def test_parse_manifest() -> None:
    body = json.dumps([{"prefix": "s3://b/p/"}, "rel/one.csv", "two.csv"]).encode()
    assert parse_manifest(body) == ("s3://b/p/", ["rel/one.csv", "two.csv"])


def test_manifest_objects_plan_under_its_prefix() -> None:
    prefix, entries = parse_manifest(b'[{"prefix": "s3://b/p/"}, "z/1.csv", "a.csv"]')
    plan = make_plan([(prefix + e, 3) for e in entries], prefix, 1, 10, True)
    assert [o.Key for o in plan.Inputs] == ["a.csv", "z/1.csv"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "is not JSON"),
        (b"{}", "must be a JSON array"),
        (b"[]", "must be a JSON array"),
        (b'["s3://b/p/x"]', 'entry 0 must be {"prefix"'),
        (b'[{"prefix": "s3://b/p/", "x": 1}, "a"]', "entry 0 must be"),
        (b'[{"prefix": 5}, "a"]', "entry 0: the prefix must be an s3:// URI, not 5"),
        (b'[{"prefix": "b/p/"}, "a"]', "entry 0: the prefix must be an s3:// URI"),
        (b'[{"prefix": "s3://b/p/"}]', "lists no objects after its prefix"),
        (
            b'[{"prefix": "s3://b/p/"}, "a", 7]',
            "entry 2 must be a key relative to the prefix, not 7",
        ),
        (b'[{"prefix": "s3://b/p/"}, "a", ""]', "entry 2 must be a key"),
        (b'[{"prefix": "s3://b/p/"}, "a", "b", "a"]', "entry 3 repeats entry 1 ('a')"),
    ],
)
def test_manifest_errors_name_the_entry(body: bytes, words: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(body)
    assert str(caught.value).startswith("the ManifestFile ")
    assert words in str(caught.value)
    assert caught.value.field == "TransformInput.DataSource.S3DataSource.S3Uri"
    assert isinstance(caught.value, PermanentError) and isinstance(caught.value, ValueError)
