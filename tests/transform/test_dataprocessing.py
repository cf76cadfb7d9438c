"""DataProcessing on records: InputFilter, the answer split per record, JoinSource, OutputFilter."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.errors import ValidationError
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.transform.batching import pack
from orchestrator.transform.dataprocessing import (
    BadRecord,
    DataProcessing,
    DataProcessingError,
    OutputMismatch,
    record_kind,
)
from orchestrator.transform.jsonpath import JsonPathError, NothingSelected
from orchestrator.transform.records import split_records

CSV = "text/csv"
JSON = "application/json"
JSONL = "application/jsonlines"


def dp(**kwargs: Any) -> DataProcessing:
    return DataProcessing(**kwargs)


# --- content types ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/csv", "csv"),
        ("text/csv; charset=utf-8", "csv"),
        ("TEXT/CSV", "csv"),
        ("application/x-csv", "csv"),
        ("application/json", "json"),
        ("application/jsonlines", "json"),
        ("application/x-ndjson", "json"),
        ("application/x-npy", None),
        ("text/plain", None),
        ("", None),
        (None, None),
    ],
)
def test_record_kind(content_type: str | None, kind: str | None) -> None:
    assert record_kind(content_type) == kind


# --- construction -------------------------------------------------------------------------
@pytest.mark.parametrize("field", ["InputFilter", "OutputFilter"])
def test_a_bad_path_names_its_field(field: str) -> None:
    key = "input_filter" if field == "InputFilter" else "output_filter"
    with pytest.raises(JsonPathError) as caught:
        dp(**{key: "$[1:]]"}, content_type=CSV)
    assert caught.value.field == f"DataProcessing.{field}"
    assert str(caught.value).startswith(f"DataProcessing.{field}: unexpected ']' at position 5")


@pytest.mark.parametrize(
    ("kwargs", "field", "words"),
    [
        (
            {"input_filter": "$[1:]", "content_type": "application/x-npy"},
            "DataProcessing.InputFilter",
            "TransformInput.ContentType is 'application/x-npy'",
        ),
        ({"input_filter": "$[1:]"}, "DataProcessing.InputFilter", "ContentType is not set"),
        (
            {"join_source": "Input", "content_type": "image/png"},
            "DataProcessing.JoinSource",
            "'image/png'",
        ),
        (
            {"output_filter": "$[0]", "content_type": CSV, "accept": "application/x-npy"},
            "DataProcessing.OutputFilter",
            "TransformOutput.Accept is 'application/x-npy'",
        ),
        (
            {
                "output_filter": "$[0]",
                "join_source": "Input",
                "content_type": "text/plain",
                "accept": CSV,
            },
            "DataProcessing.JoinSource",
            "'text/plain'",
        ),
        (
            {"join_source": "Both", "content_type": CSV},
            "DataProcessing.JoinSource",
            "Input or None",
        ),
    ],
)
def test_records_that_are_neither_csv_nor_json_are_refused_naming_the_field(
    kwargs: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(DataProcessingError) as caught:
        dp(**kwargs)
    err = caught.value
    assert err.field == field
    assert str(err).startswith(field)
    assert words in str(err)
    assert isinstance(err, ValidationError) and isinstance(err, ValueError)
    if "needs CSV or JSON" in str(err):
        assert "use text/csv, application/json or application/jsonlines, or drop" in str(err)


def test_the_output_format_falls_back_to_the_content_type() -> None:
    d = dp(output_filter="$[0]", content_type=CSV)
    assert d.output_kind == "csv" and d.accept == CSV


def test_root_and_empty_filters_do_nothing_and_need_no_format() -> None:
    d = dp(input_filter="$", output_filter="", content_type="application/x-npy")
    assert d.input_filter is None and d.output_filter is None
    assert not d.needs_split
    assert d.filter_input(b"\x93NUMPY") == b"\x93NUMPY"


@pytest.mark.parametrize(
    ("kwargs", "needs"),
    [
        ({}, False),
        ({"input_filter": "$[1:]", "content_type": CSV}, False),
        ({"join_source": "None", "content_type": CSV}, False),
        ({"join_source": "Input", "content_type": CSV}, True),
        ({"output_filter": "$[0]", "content_type": CSV}, True),
        ({"output_filter": "$", "content_type": CSV}, False),
    ],
)
def test_needs_split(kwargs: dict[str, Any], needs: bool) -> None:
    assert dp(**kwargs).needs_split is needs


def _request(**data_processing: Any) -> CreateTransformJobRequest:
    return CreateTransformJobRequest.model_validate(
        {
            "TransformJobName": "job",
            "ModelName": "model",
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://b/in/"}},
                "ContentType": CSV,
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://b/out", "Accept": JSON},
            "TransformResources": {"InstanceType": "local", "InstanceCount": 1},
            **({"DataProcessing": data_processing} if data_processing else {}),
        }
    )


def test_from_request() -> None:
    d = DataProcessing.from_request(
        _request(InputFilter="$[1:]", JoinSource="Input", OutputFilter="$[0,-1]")
    )
    assert str(d.input_filter) == "$[1:]" and str(d.output_filter) == "$[0,-1]"
    assert d.join and d.input_kind == "csv" and d.output_kind == "json"
    plain = DataProcessing.from_request(_request())
    assert plain.input_filter is None and plain.output_filter is None and not plain.join


# --- InputFilter --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "content_type", "record", "sent"),
    [
        ("$[1:]", CSV, b"id1,1.0,2.0", b"1.0,2.0"),
        ("$[0,-1]", CSV, b"id1,1.0,2.0", b"id1,2.0"),
        ("$[0]", CSV, b"id1,1.0,2.0", b"id1"),
        ("$[1]", CSV, b'7,"a,b",3', b'"a,b"'),
        ("$[1:]", CSV, b'7,"say ""hi""",3', b'"say ""hi""",3'),
        ("$[1:]", CSV, b"\xef\xbb\xbfid,1", b"1"),  # a byte-order mark is dropped
        ("$[1:]", CSV, b"id,,", b","),  # empty columns stay columns
        ("$[1:]", CSV, "é,ü".encode(), "ü".encode()),
        ("$.features", JSON, b'{"id": 1, "features": [1, 2]}', b"[1,2]"),
        ("$.features[0]", JSONL, b'{"id": 1, "features": [1, 2]}', b"1"),
        ("$['b','a']", JSON, b'{"a": 1, "b": "x", "c": 3}', b'{"b":"x","a":1}'),
        ("$.text", JSON, '{"text": "héllo"}'.encode(), '"héllo"'.encode()),
        ("$[1:]", JSON, b"[1, 2, 3]", b"[2,3]"),
    ],
)
def test_filter_input(expr: str, content_type: str, record: bytes, sent: bytes) -> None:
    assert dp(input_filter=expr, content_type=content_type).filter_input(record) == sent


def test_no_input_filter_sends_the_record_unchanged() -> None:
    assert dp(content_type=CSV).filter_input(b"not, really csv\r") == b"not, really csv\r"


def test_an_input_filter_that_selects_nothing_fails_naming_the_field() -> None:
    with pytest.raises(NothingSelected) as caught:
        dp(input_filter="$[5]", content_type=CSV).filter_input(b"a,b,c")
    assert caught.value.field == "DataProcessing.InputFilter"
    assert "index 5 is out of range at $, a list of 3" in str(caught.value)
    with pytest.raises(NothingSelected, match=r"the result is an empty list"):
        dp(input_filter="$[1:]", content_type=CSV).filter_input(b"only")


@pytest.mark.parametrize(
    ("content_type", "record", "words"),
    [
        (JSON, b'{"a": 1', "the input record is not JSON, as its ContentType says: Expecting"),
        (JSON, b"\xff\xfe{}", "the input record is not UTF-8 text (invalid start byte at byte 0)"),
        (CSV, b"a,b\x80", "not UTF-8 text"),
        (CSV, b"a,b\rc", "the input record is not one CSV row: new-line character"),
    ],
)
def test_bad_records(content_type: str, record: bytes, words: str) -> None:
    with pytest.raises(BadRecord) as caught:
        dp(input_filter="$[0]", content_type=content_type).filter_input(record)
    assert words in str(caught.value)
    assert isinstance(caught.value, ValueError)


# --- split_output -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "count", "accept", "answers"),
    [
        (b"0.1\n0.2\n", 2, CSV, [b"0.1", b"0.2"]),
        (b"0.1\n0.2", 2, CSV, [b"0.1", b"0.2"]),
        (b"0.1\r\n0.2\r\n", 2, "text/csv; charset=utf-8", [b"0.1", b"0.2"]),
        (b"1,2\n3,4\n", 2, CSV, [b"1,2", b"3,4"]),
        (b"\n", 1, CSV, [b""]),
        (b"", 0, CSV, []),
        (b'{"a":1}\n{"a":2}\n', 2, JSONL, [b'{"a":1}', b'{"a":2}']),
        (b"yes\nno\n", 2, "text/plain", [b"yes", b"no"]),
        (b"[0.1, 0.2, 0.3]", 3, JSON, [b"0.1", b"0.2", b"0.3"]),
        (b"[[1, 2], [3, 4]]", 2, JSON, [b"[1,2]", b"[3,4]"]),
        (b'[{"label": 1}, {"label": 0}]', 2, JSON, [b'{"label":1}', b'{"label":0}']),
        (b'{"predictions": [[0.9, 0.1], [0.2, 0.8]]}', 2, JSON, [b"[0.9,0.1]", b"[0.2,0.8]"]),
        (b'{"predictions": [0.7]}', 1, JSON, [b"0.7"]),
        (b"[0.7]", 1, JSON, [b"0.7"]),
        (b"[0.1, 0.9]\n", 1, JSON, [b"[0.1, 0.9]"]),  # one record: the whole answer
        (b'{"label": 1, "score": 0.5}', 1, JSON, [b'{"label": 1, "score": 0.5}']),
        (b"\x00\x01binary", 1, "application/x-npy", [b"\x00\x01binary"]),
    ],
)
def test_split_output(body: bytes, count: int, accept: str, answers: list[bytes]) -> None:
    assert dp().split_output(body, count, accept) == answers


@pytest.mark.parametrize(
    ("body", "count", "accept", "words"),
    [
        (
            b"1\n2\n3\n",
            2,
            CSV,
            "the model answered 3 records for 2 inputs (Content-Type 'text/csv': one answer per line)",
        ),
        (b"1\n", 2, JSONL, "the model answered 1 record for 2 inputs"),
        (b"[1, 2, 3]", 2, JSON, "the model answered 3 records for 2 inputs"),
        (b'{"predictions": [1, 2, 3]}', 2, JSON, "the model answered 3 records for 2 inputs"),
        (b'{"a": 1}', 2, JSON, "the model answered 1 record for 2 inputs"),
        (
            b"\x00\x01",
            2,
            "application/x-npy",
            "cannot split the model's answer (Content-Type 'application/x-npy') into 2 records",
        ),
    ],
)
def test_split_output_mismatch(body: bytes, count: int, accept: str, words: str) -> None:
    with pytest.raises(OutputMismatch) as caught:
        dp().split_output(body, count, accept)
    assert words in str(caught.value)


def test_split_output_of_an_answer_that_is_not_json() -> None:
    with pytest.raises(
        BadRecord, match="the model's answer is not JSON, as its answer's Content-Type says"
    ):
        dp().split_output(b"0.1,0.2", 2, JSON)


# --- join and OutputFilter ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "record", "answer", "out"),
    [
        # CSV: the answer's columns after the input's (the original record, not the filtered one).
        ({"join_source": "Input", "content_type": CSV}, b"id1,1,2", b"0.9", b"id1,1,2,0.9"),
        ({"join_source": "Input", "content_type": CSV}, b"id1,1,2", b"0.9,0.1", b"id1,1,2,0.9,0.1"),
        (
            {"join_source": "Input", "content_type": CSV, "output_filter": "$[0,-1]"},
            b"id1,1,2",
            b"0.9",
            b"id1,0.9",
        ),
        (
            {"join_source": "Input", "content_type": CSV, "output_filter": "$[-1]"},
            b"id1,1,2",
            b"0.9",
            b"0.9",
        ),
        ({"join_source": "Input", "content_type": CSV}, b'a,"b,c"', b'"x,y"', b'a,"b,c","x,y"'),
        ({"join_source": "Input", "content_type": CSV}, b"id1", b"", b"id1"),
        # CSV input, JSON answers: the elements become columns.
        (
            {"join_source": "Input", "content_type": CSV, "accept": JSON},
            b"id1,1",
            b"[0.1, 0.9]",
            b"id1,1,0.1,0.9",
        ),
        (
            {"join_source": "Input", "content_type": CSV, "accept": JSON},
            b"id1",
            b'{"p": 1}',
            b'id1,"{""p"":1}"',
        ),
        (
            {"join_source": "Input", "content_type": CSV, "accept": JSON},
            b"id1",
            b"true",
            b"id1,true",
        ),
        ({"join_source": "Input", "content_type": CSV, "accept": JSON}, b"id1", b"7,8", b"id1,7,8"),
        # JSON: SageMakerOutput on the input object.
        (
            {"join_source": "Input", "content_type": JSONL},
            b'{"id": 1, "features": [1, 2]}',
            b'{"label": 1}',
            b'{"id":1,"features":[1,2],"SageMakerOutput":{"label":1}}',
        ),
        (
            {
                "join_source": "Input",
                "content_type": JSON,
                "output_filter": "$['id','SageMakerOutput']",
            },
            b'{"id": 1, "features": [1, 2]}',
            b'{"label": 1}',
            b'{"id":1,"SageMakerOutput":{"label":1}}',
        ),
        (
            {
                "join_source": "Input",
                "content_type": JSON,
                "output_filter": "$.SageMakerOutput.label",
            },
            b'{"id": 1}',
            b'{"label": 1}',
            b"1",
        ),
        (
            {"join_source": "Input", "content_type": JSON},
            b'{"id": 1}',
            b"cat",
            b'{"id":1,"SageMakerOutput":"cat"}',
        ),
        (
            {"join_source": "Input", "content_type": JSON},
            b'{"id": 1}',
            b"0.5",
            b'{"id":1,"SageMakerOutput":0.5}',
        ),
        (
            {"join_source": "Input", "content_type": JSON},
            b'{"id": 1, "SageMakerOutput": "old"}',
            b"2",
            b'{"id":1,"SageMakerOutput":2}',
        ),
        # JSON input that is not an object: a new object holds both.
        (
            {"join_source": "Input", "content_type": JSON},
            b"[1, 2]",
            b"0.5",
            b'{"SageMakerInput":[1,2],"SageMakerOutput":0.5}',
        ),
        # JoinSource None: OutputFilter over the answer alone, in the answer's format.
        ({"output_filter": "$[1:]", "content_type": CSV}, b"ignored", b"a,b,c", b"b,c"),
        (
            {"output_filter": "$.p", "content_type": CSV, "accept": JSON},
            b"x",
            b'{"p": [1, 2], "q": 3}',
            b"[1,2]",
        ),
        ({"content_type": CSV}, b"x", b"as is\r", b"as is\r"),
    ],
)
def test_join_and_filter_output(
    kwargs: dict[str, Any], record: bytes, answer: bytes, out: bytes
) -> None:
    assert dp(**kwargs).join_and_filter_output(record, answer) == out


def test_an_output_filter_that_selects_nothing_fails_naming_the_field() -> None:
    d = dp(join_source="Input", content_type=CSV, output_filter="$[0,7]")
    with pytest.raises(NothingSelected) as caught:
        d.join_and_filter_output(b"a,b", b"1")
    assert caught.value.field == "DataProcessing.OutputFilter"
    assert "index 7 is out of range at $, a list of 3" in str(caught.value)


@pytest.mark.parametrize(
    ("kwargs", "record", "answer", "words"),
    [
        (
            {"join_source": "Input", "content_type": JSON},
            b"{bad",
            b"1",
            "the input record is not JSON",
        ),
        (
            {"join_source": "Input", "content_type": JSON},
            b"{}",
            b"\xff",
            "the model's answer is not UTF-8",
        ),
        (
            {"output_filter": "$.a", "content_type": JSON},
            b"{}",
            b"nope",
            "the model's answer is not JSON, as its Accept says",
        ),
        (
            {"output_filter": "$[0]", "content_type": CSV},
            b"",
            b"a\rb",
            "the model's answer is not one CSV row",
        ),
    ],
)
def test_join_bad_records(kwargs: dict[str, Any], record: bytes, answer: bytes, words: str) -> None:
    with pytest.raises(BadRecord, match=words):
        dp(**kwargs).join_and_filter_output(record, answer)


# --- the issue's example, end to end over the pure parts ----------------------------------
def _model(body: bytes) -> bytes:
    """A CSV model: one answer line per input line, the sum of its columns."""
    return b"".join(b"%g\n" % sum(float(c) for c in line.split(b",")) for line in body.splitlines())


def test_the_issue_example_csv_filter_join_and_output_filter() -> None:
    d = dp(
        input_filter="$[1:]",
        join_source="Input",
        output_filter="$[0,-1]",
        content_type=CSV,
        accept=CSV,
    )
    data = b"".join(b"id%d,%d,%d\n" % (i, i, 2 * i) for i in range(50))
    records = split_records(data, "Line")
    out: list[bytes] = []
    for batch in pack((d.filter_input(r) for r in records), "MultiRecord", 64, "Line"):
        assert len(batch.body) <= 64
        answers = d.split_output(_model(batch.body), batch.count, CSV)
        for record, answer in zip(
            records[batch.first : batch.first + batch.count], answers, strict=True
        ):
            out.append(d.join_and_filter_output(record, answer))
    assert out == [b"id%d,%d" % (i, 3 * i) for i in range(50)]


def test_json_lines_end_to_end_with_a_predictions_answer() -> None:
    d = dp(
        input_filter="$.features",
        join_source="Input",
        output_filter="$['id','SageMakerOutput']",
        content_type=JSONL,
        accept=JSON,
    )
    records = [json.dumps({"id": i, "features": [i, i + 1]}).encode() for i in range(5)]
    sent = [d.filter_input(r) for r in records]
    assert sent[2] == b"[2,3]"
    answer = json.dumps({"predictions": [sum(json.loads(s)) for s in sent]}).encode()
    answers = d.split_output(answer, len(sent), JSON)
    joined = [
        json.loads(d.join_and_filter_output(r, a)) for r, a in zip(records, answers, strict=True)
    ]
    assert joined == [{"id": i, "SageMakerOutput": 2 * i + 1} for i in range(5)]
