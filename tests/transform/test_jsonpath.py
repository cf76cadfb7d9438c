"""SageMaker's JSONPath subset: parsing, selection, and the errors' positions and fields."""

from __future__ import annotations

import contextlib
import random
from typing import Any

import pytest

from orchestrator.errors import PermanentError, ValidationError
from orchestrator.transform.jsonpath import (
    Indexes,
    JsonPath,
    JsonPathError,
    Names,
    NothingSelected,
    Wildcard,
    parse,
)

DOC = {
    "id": 7,
    "features": [1.5, 2.5, 3.5],
    "meta": {"source": "s3", "tags": ["a", "b"]},
    "rows": [{"x": 1, "y": 2}, {"x": 3, "y": 4}],
    "odd key": True,
    "SageMakerOutput": {"label": 1},
}
COLUMNS = ["id", "f1", "f2", "f3", "f4"]


@pytest.mark.parametrize(
    ("expr", "steps"),
    [
        ("$", ()),
        ("$.id", (Names(("id",)),)),
        ("$['id']", (Names(("id",)),)),
        ('$["id"]', (Names(("id",)),)),
        ("$.a.b", (Names(("a",)), Names(("b",)))),
        ("$[0]", (Indexes((0,)),)),
        ("$[-1]", (Indexes((-1,)),)),
        ("$[1:]", (Indexes((slice(1, None, None),)),)),
        ("$[:5]", (Indexes((slice(None, 5, None),)),)),
        ("$[2:5]", (Indexes((slice(2, 5, None),)),)),
        ("$[::2]", (Indexes((slice(None, None, 2),)),)),
        ("$[5:1:-2]", (Indexes((slice(5, 1, -2),)),)),
        ("$[:]", (Indexes((slice(None, None, None),)),)),
        ("$[*]", (Wildcard(),)),
        ("$.*", (Wildcard(),)),
        ("$.id.*", (Names(("id",)), Wildcard())),
        ("$[1,3,5]", (Indexes((1, 3, 5)),)),
        ("$[0,5:]", (Indexes((0, slice(5, None, None))),)),
        ("$[ 0 , -1 ]", (Indexes((0, -1)),)),
        ("$['id','SageMakerOutput']", (Names(("id", "SageMakerOutput")),)),
        ("$.field1.['child1','child2']", (Names(("field1",)), Names(("child1", "child2")))),
        ("$['it\\'s']", (Names(("it's",)),)),
        ("$['a.b[0]']", (Names(("a.b[0]",)),)),
        ("$.a-b_c1", (Names(("a-b_c1",)),)),
        ("$.café", (Names(("café",)),)),
    ],
)
def test_parse(expr: str, steps: tuple[Any, ...]) -> None:
    path = parse(expr)
    assert path.steps == steps
    assert str(path) == expr


@pytest.mark.parametrize(
    ("expr", "position", "words"),
    [
        ("$[1:]]", 5, "unexpected ']'"),
        ("", 0, "unexpected end"),
        ("features", 0, "expected '$'"),
        ("$.", 2, "unexpected end"),
        ("$..id", 2, "recursive descent"),
        ("$[?(@.x > 1)]", 2, "filter and script expressions"),
        ("$[(@.length-1)]", 2, "filter and script expressions"),
        ("$[", 2, "unexpected end"),
        ("$[]", 2, "unexpected ']'"),
        ("$[1", 3, "expected ']'"),
        ("$[1 2]", 4, "unexpected '2'"),
        ("$[1:2:0]", 6, "step cannot be 0"),
        ("$[-]", 3, "expected a digit"),
        ("$[1:-x]", 5, "expected a digit"),
        ("$['a',1]", 6, "names and indexes do not mix"),
        ("$[1,'a']", 4, "names and indexes do not mix"),
        ("$['a", 2, "unterminated name"),
        ("$.a b", 3, "unexpected ' '"),
        ("$.a]", 3, "unexpected ']'"),
        ("$x", 1, "unexpected 'x'"),
        ("$[x]", 2, "unexpected 'x'"),
        ("$[*", 3, "expected ']'"),
        ("$.*x", 3, "unexpected 'x'"),
    ],
)
def test_parse_errors_name_the_field_the_position_and_the_expression(
    expr: str, position: int, words: str
) -> None:
    with pytest.raises(JsonPathError) as caught:
        parse(expr, "InputFilter")
    err = caught.value
    assert err.position == position
    assert err.field == "InputFilter"
    assert str(err).startswith("InputFilter: ")
    assert f"at position {position} of {expr!r}" in str(err)
    assert words in str(err)


def test_the_error_is_a_validation_error_and_a_value_error() -> None:
    with pytest.raises(JsonPathError) as caught:
        parse("$[1:]]", "InputFilter")
    assert isinstance(caught.value, ValidationError)
    assert isinstance(caught.value, ValueError)
    assert (
        str(caught.value)
        == "InputFilter: unexpected ']' at position 5 of '$[1:]]' (expected '.' or '[')"
    )
    assert caught.value.to_payload()["field"] == "InputFilter"


def test_default_field_name() -> None:
    with pytest.raises(JsonPathError, match=r"^JSONPath: "):
        parse("x")


@pytest.mark.parametrize(
    ("expr", "doc", "expected"),
    [
        ("$", DOC, DOC),
        ("$.id", DOC, 7),
        ("$['id']", DOC, 7),
        ("$['odd key']", DOC, True),
        ("$.features", DOC, [1.5, 2.5, 3.5]),
        ("$.features[0]", DOC, 1.5),
        ("$.features[-1]", DOC, 3.5),
        ("$.meta.tags[1]", DOC, "b"),
        ("$.rows[1].y", DOC, 4),
        ("$.features[1:]", DOC, [2.5, 3.5]),
        ("$.features[:1]", DOC, [1.5]),
        ("$.features[0:1]", DOC, [1.5]),  # one element, still a list: a slice is indefinite
        ("$.features[::-1]", DOC, [3.5, 2.5, 1.5]),
        ("$.features[*]", DOC, [1.5, 2.5, 3.5]),
        ("$.meta.*", DOC, ["s3", ["a", "b"]]),
        ("$.rows[*].x", DOC, [1, 3]),
        ("$.rows[*]['x','y']", DOC, [{"x": 1, "y": 2}, {"x": 3, "y": 4}]),
        ("$.rows[0]['y','x']", DOC, {"y": 2, "x": 1}),
        ("$['id','SageMakerOutput']", DOC, {"id": 7, "SageMakerOutput": {"label": 1}}),
        ("$['id']['x','y']", {"id": {"x": 1, "y": 2}}, {"x": 1, "y": 2}),
        ("$['features','rows'][0]", DOC, [1.5, {"x": 1, "y": 2}]),  # each name's [0]
        ("$['meta','SageMakerOutput'].*", DOC, ["s3", ["a", "b"], 1]),
        ("$.rows[0,1].x", DOC, [1, 3]),
        ("$[0]", COLUMNS, "id"),
        ("$[-1]", COLUMNS, "f4"),
        ("$[1:]", COLUMNS, ["f1", "f2", "f3", "f4"]),
        ("$[2:4]", COLUMNS, ["f2", "f3"]),
        ("$[:2]", COLUMNS, ["id", "f1"]),
        ("$[0,-1]", COLUMNS, ["id", "f4"]),
        ("$[0,3:]", COLUMNS, ["id", "f3", "f4"]),
        ("$[-1,0]", COLUMNS, ["f4", "id"]),  # the order written
        ("$[1,1]", COLUMNS, ["f1", "f1"]),
        ("$[::2]", COLUMNS, ["id", "f2", "f4"]),
        ("$[1:100]", COLUMNS, ["f1", "f2", "f3", "f4"]),  # slices clip, as in Python
        ("$[*]", COLUMNS, COLUMNS),
        ("$", "a string", "a string"),
        ("$[0][1]", [[1, 2]], 2),
    ],
)
def test_select(expr: str, doc: Any, expected: Any) -> None:
    assert parse(expr).select(doc) == expected


def test_root_returns_the_document_itself() -> None:
    doc = {"a": [1]}
    path = parse("$")
    assert path.is_root and path.definite
    assert path.select(doc) is doc


@pytest.mark.parametrize(
    ("expr", "definite"),
    [
        ("$", True),
        ("$.a", True),
        ("$['a']", True),
        ("$.a[0].b[-1]", True),
        ("$[0,1]", False),
        ("$['a','b']", False),
        ("$[1:]", False),
        ("$[*]", False),
        ("$.a.*", False),
    ],
)
def test_definite(expr: str, definite: bool) -> None:
    assert parse(expr).definite is definite


@pytest.mark.parametrize(
    ("expr", "doc", "words"),
    [
        ("$.missing", DOC, "$ has no key 'missing'"),
        ("$.meta.nope", DOC, "$.meta has no key 'nope' (its keys: 'source', 'tags')"),
        ("$.features[3]", DOC, "index 3 is out of range at $.features, a list of 3"),
        ("$.features[-4]", DOC, "index -4 is out of range"),
        ("$[5]", COLUMNS, "index 5 is out of range at $, a list of 5"),
        ("$[0,5]", COLUMNS, "index 5 is out of range"),
        ("$[0]", DOC, "index 0 needs a list at $, found an object"),
        ("$.id.x", DOC, "'x' needs an object at $.id, found a number"),
        ("$[0].x", COLUMNS, "'x' needs an object at $[0], found a string"),
        ("$.id[1:]", DOC, "a slice needs a list at $.id, found a number"),
        ("$.id.*", DOC, "'*' needs an object or a list at $.id, found a number"),
        ("$[5:]", COLUMNS, "the result is an empty list"),
        ("$[*]", [], "the result is an empty list"),
        ("$.*", {}, "the result is an empty list"),
        ("$.rows[*].z", DOC, "$.rows[0] has no key 'z'"),
        ("$['id','nope']", DOC, "$ has no key 'nope'"),
        ("$.rows[*]['x','nope']", DOC, "$.rows[0] has no key 'nope'"),
        ("$[*]['x','y']", [], "the result is an empty list"),
        ("$.features[0].x", DOC, "found a number"),
        ("$.a", None, "found null"),
        ("$.a", [True], "found a list of 1"),
        ("$['odd key'].x", DOC, "$['odd key'], found a boolean"),
    ],
)
def test_nothing_selected_says_where(expr: str, doc: Any, words: str) -> None:
    with pytest.raises(NothingSelected) as caught:
        parse(expr, "OutputFilter").select(doc)
    message = str(caught.value)
    assert message.startswith(f"OutputFilter {expr!r} selects nothing: ")
    assert words in message
    assert caught.value.field == "OutputFilter"
    assert isinstance(caught.value, PermanentError) and isinstance(caught.value, ValueError)


def test_many_keys_are_cut_short_in_the_message() -> None:
    doc = {f"k{i}": i for i in range(20)}
    with pytest.raises(NothingSelected, match=r"'k9', \.\.\.\)"):
        parse("$.nope").select(doc)


def test_select_does_not_change_the_document() -> None:
    doc = {"a": [3, 1, 2], "b": {"c": 1}}
    before = repr(doc)
    for expr in ("$.a[::-1]", "$['a','b']", "$.*", "$.a[0,1]"):
        parse(expr).select(doc)
    assert repr(doc) == before


# --- properties ---------------------------------------------------------------------------
def _index_text(rng: random.Random) -> tuple[str, int | slice]:
    if rng.random() < 0.4:
        i = rng.randint(-8, 8)
        return str(i), i

    def bound() -> int | None:
        return None if rng.random() < 0.3 else rng.randint(-9, 9)

    start, stop = bound(), bound()
    step = None if rng.random() < 0.6 else rng.choice([-3, -2, -1, 1, 2, 3])
    text = f"{'' if start is None else start}:{'' if stop is None else stop}"
    if step is not None or rng.random() < 0.2:
        text += f":{'' if step is None else step}"
    return text, slice(start, stop, step)


def test_indexes_and_slices_select_as_python_does() -> None:
    rng = random.Random(15)
    for _ in range(3000):
        doc = list(range(rng.randint(0, 8)))
        parts = [_index_text(rng) for _ in range(rng.randint(1, 3))]
        expr = "$[" + ",".join(text for text, _ in parts) + "]"
        path = parse(expr)
        expected: list[int] = []
        in_range = True
        for _, item in parts:
            if isinstance(item, int):
                if -len(doc) <= item < len(doc):
                    expected.append(doc[item])
                else:
                    in_range = False
            else:
                expected.extend(doc[item])
        if len(parts) == 1 and isinstance(parts[0][1], int):
            if in_range:
                assert path.select(doc) == expected[0], expr
            else:
                with pytest.raises(NothingSelected):
                    path.select(doc)
        elif not in_range or not expected:
            with pytest.raises(NothingSelected):
                path.select(doc)
        else:
            assert path.select(doc) == expected, expr


def test_any_text_parses_or_raises_a_json_path_error_at_a_position_inside_it() -> None:
    rng = random.Random(63)
    alphabet = "$.[]*:,-'\"?()@ 0123456789abc\\"
    parsed = 0
    for _ in range(20000):
        expr = "$" + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        try:
            path = parse(expr, "OutputFilter")
        except JsonPathError as err:
            assert 0 <= err.position <= len(expr)
            assert f"at position {err.position} of {expr!r}" in str(err)
            continue
        parsed += 1
        assert isinstance(path, JsonPath)
        for doc in (DOC, COLUMNS, [DOC, DOC], "s", None):
            with contextlib.suppress(NothingSelected):
                path.select(doc)
    assert parsed > 100  # the alphabet does reach valid paths
