"""SageMaker's DataProcessing on records: InputFilter, JoinSource, OutputFilter.

Per record, as SageMaker does it:

1. ``filter_input``: InputFilter selects what the model gets. A CSV record is one CSV row,
   selected as the list of its column strings (``$[1:]`` drops the first column) and written
   back as a CSV row; a JSON record (``application/json``, or one line of
   ``application/jsonlines``) is parsed, selected and written back compactly.
2. The model answers a mini-batch; ``split_output`` cuts the answer into one per record (only
   when ``needs_split``: JoinSource Input or an OutputFilter; otherwise a mini-batch's answer is
   written whole).
3. ``join_and_filter_output``: JoinSource Input joins each answer to its *original* input
   record: CSV appends the answer's columns to the input's; JSON sets the input object's
   ``SageMakerOutput`` key to the answer (parsed when it is JSON, else the text), and an input
   that is not an object becomes ``{"SageMakerInput": input, "SageMakerOutput": answer}``.
   OutputFilter then selects from the joined record (or, JoinSource None, from the answer alone),
   written back in the same format.

Formats: a content type containing ``csv`` is CSV; one containing ``json`` is JSON (JSON Lines
included: the records are lines). The output's format is ``accept``, or ``content_type`` when no
Accept is set. A filter or a join over records that are neither is refused at construction,
naming the field. Records are UTF-8 (a byte-order mark is dropped).
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from orchestrator.errors import ValidationError
from orchestrator.resources.transform import JOIN_OUTPUT_KEY, CreateTransformJobRequest
from orchestrator.transform.errors import TransformDataError
from orchestrator.transform.jsonpath import JsonPath, parse

__all__ = [
    "JOIN_INPUT_KEY",
    "JOIN_OUTPUT_KEY",
    "BadRecord",
    "DataProcessing",
    "DataProcessingError",
    "OutputMismatch",
    "RecordKind",
    "record_kind",
]

RecordKind = Literal["csv", "json"]
JOIN_INPUT_KEY = "SageMakerInput"  # JoinSource Input on a JSON record that is not an object
_LINE_TYPES = ("jsonlines", "json-lines", "ndjson", "json-seq")


class DataProcessingError(ValidationError, ValueError):
    """DataProcessing asked of records it cannot apply to (neither CSV nor JSON)."""


class BadRecord(TransformDataError):
    """A record or an answer is not the CSV or JSON its content type says."""


class OutputMismatch(TransformDataError):
    """The model answered a different number of records than it was sent."""


def record_kind(content_type: str | None) -> RecordKind | None:
    """``"csv"`` or ``"json"`` for a content type that names it; None for anything else."""
    lowered = (content_type or "").lower()
    if "csv" in lowered:
        return "csv"
    if "json" in lowered:
        return "json"
    return None


class DataProcessing:
    """A job's DataProcessing, parsed once; the methods apply it to records and answers."""

    def __init__(
        self,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: Literal["Input", "None"] | None = None,
        content_type: str | None = None,
        accept: str | None = None,
    ) -> None:
        if join_source not in (None, "Input", "None"):
            raise DataProcessingError(
                f"DataProcessing.JoinSource must be Input or None, not {join_source!r}",
                field="DataProcessing.JoinSource",
            )
        self.content_type = content_type
        self.accept = accept or content_type
        self.input_filter = _parse_filter(input_filter, "DataProcessing.InputFilter")
        self.output_filter = _parse_filter(output_filter, "DataProcessing.OutputFilter")
        self.join = join_source == "Input"
        self.input_kind = record_kind(content_type)
        self.output_kind = record_kind(self.accept)
        input_type = f"TransformInput.ContentType is {_shown(content_type)}"
        if self.input_filter is not None and self.input_kind is None:
            raise _needs_records("DataProcessing.InputFilter", input_type)
        if self.join and self.input_kind is None:
            raise _needs_records("DataProcessing.JoinSource", input_type)
        if self.output_filter is not None and self.joined_kind is None:
            raise _needs_records(
                "DataProcessing.OutputFilter",
                input_type if self.join else f"TransformOutput.Accept is {_shown(self.accept)}",
            )

    @classmethod
    def from_request(cls, request: CreateTransformJobRequest) -> DataProcessing:
        """The DataProcessing of a CreateTransformJob request (none set: records untouched)."""
        spec = request.DataProcessing
        return cls(
            input_filter=spec.InputFilter if spec else None,
            output_filter=spec.OutputFilter if spec else None,
            join_source=spec.JoinSource if spec else None,
            content_type=request.TransformInput.ContentType,
            accept=request.TransformOutput.Accept,
        )

    @property
    def needs_split(self) -> bool:
        """True when answers are handled per record (a join or an OutputFilter)."""
        return self.join or self.output_filter is not None

    @property
    def joined_kind(self) -> RecordKind | None:
        """The format of what OutputFilter reads and the output is written in."""
        return self.input_kind if self.join else self.output_kind

    # --- 1. before the model --------------------------------------------------------------
    def filter_input(self, record: bytes) -> bytes:
        """The part of ``record`` that InputFilter selects (the record when there is none)."""
        if self.input_filter is None:
            return record
        if self.input_kind == "csv":
            return _csv_bytes(self.input_filter.select(_csv_row(record, "input record")))
        return _json_bytes(self.input_filter.select(_json(record, "input record", "ContentType")))

    # --- 2. the model's answer, per record ------------------------------------------------
    def split_output(self, body: bytes, count: int, accept: str) -> list[bytes]:
        """A mini-batch's answer as one answer per input record, in order.

        CSV, JSON Lines and ``text/*`` answers: one line each (one trailing newline ignored).
        ``application/json``: a top-level array of ``count`` elements, or an object with a
        single key holding one (``{"predictions": [...]}``, TensorFlow Serving's and our
        model server's shape), each element written compactly; failing that, for one record,
        the whole answer. Anything else: the whole answer, for one record only.
        """
        lowered = (accept or "").lower()
        if (
            "csv" in lowered
            or lowered.startswith("text/")
            or any(t in lowered for t in _LINE_TYPES)
        ):
            lines = body.split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            answers = [line[:-1] if line.endswith(b"\r") else line for line in lines]
            if len(answers) != count:
                raise _mismatch(len(answers), count, accept, "one answer per line")
            return answers
        if "json" in lowered:
            doc = _json(body, "model's answer", "answer's Content-Type")
            elements = _elements(doc, count)
            if elements is not None:
                return [_json_bytes(element) for element in elements]
            if count == 1:
                return [body.strip()]
            raise _mismatch(
                _answers_in(doc),
                count,
                accept,
                "a JSON array, or an object with one key holding one, with an element per record",
            )
        if count == 1:
            return [body]
        raise OutputMismatch(
            f"cannot split the model's answer (Content-Type {accept!r}) into {count} records: "
            "DataProcessing needs CSV, JSON or JSON Lines answers, or BatchStrategy SingleRecord"
        )

    # --- 3. join and OutputFilter ---------------------------------------------------------
    def join_and_filter_output(self, input_record: bytes, output: bytes) -> bytes:
        """One record's output line: the answer joined to ``input_record`` (the original,
        unfiltered record) when JoinSource is Input, then OutputFilter's selection."""
        joined: Any
        if self.join:
            if self.input_kind == "csv":
                joined = _csv_row(input_record, "input record") + self._answer_columns(output)
            else:
                doc = _json(input_record, "input record", "ContentType")
                answer = _json_or_text(output)
                if isinstance(doc, dict):
                    joined = {**doc, JOIN_OUTPUT_KEY: answer}
                else:
                    joined = {JOIN_INPUT_KEY: doc, JOIN_OUTPUT_KEY: answer}
        elif self.output_filter is None:
            return output
        elif self.output_kind == "csv":
            joined = _csv_row(output, "model's answer")
        else:
            joined = _json(output, "model's answer", "Accept")
        if self.output_filter is not None:
            joined = self.output_filter.select(joined)
        return _csv_bytes(joined) if self.joined_kind == "csv" else _json_bytes(joined)

    def _answer_columns(self, output: bytes) -> list[Any]:
        """An answer's columns for a CSV join: a JSON answer's elements, else its CSV row."""
        if self.output_kind == "json":
            try:
                doc = json.loads(output)
            except ValueError:
                pass
            else:
                return doc if isinstance(doc, list) else [doc]
        return _csv_row(output, "model's answer")


def _parse_filter(expr: str | None, field: str) -> JsonPath | None:
    if expr is None or expr in ("", "$"):
        return None
    return parse(expr, field)


def _shown(content_type: str | None) -> str:
    return "not set" if not content_type else repr(content_type)


def _needs_records(field: str, why: str) -> DataProcessingError:
    return DataProcessingError(
        f"{field} needs CSV or JSON records, but {why}: use text/csv, application/json or "
        f"application/jsonlines, or drop {field.rsplit('.', 1)[-1]}",
        field=field,
    )


def _mismatch(found: int, count: int, accept: str, how: str) -> OutputMismatch:
    return OutputMismatch(
        f"the model answered {found} record{'' if found == 1 else 's'} for {count} "
        f"input{'' if count == 1 else 's'} (Content-Type {accept!r}: "
        f"{how}); it must answer each record of a mini-batch, in order"
    )


def _elements(doc: Any, count: int) -> list[Any] | None:
    if isinstance(doc, list) and len(doc) == count:
        return doc
    if isinstance(doc, dict) and len(doc) == 1:
        [inner] = doc.values()
        if isinstance(inner, list) and len(inner) == count:
            return inner
    return None


def _answers_in(doc: Any) -> int:
    if isinstance(doc, list):
        return len(doc)
    if isinstance(doc, dict) and len(doc) == 1:
        [inner] = doc.values()
        if isinstance(inner, list):
            return len(inner)
    return 1


def _text(data: bytes, what: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise BadRecord(f"the {what} is not UTF-8 text ({err.reason} at byte {err.start})") from err


def _csv_row(data: bytes, what: str) -> list[Any]:
    text = _text(data, what)
    try:
        rows = list(csv.reader([text]))
    except csv.Error as err:
        raise BadRecord(f"the {what} is not one CSV row: {err}") from err
    return rows[0] if rows else []


def _csv_bytes(selected: Any) -> bytes:
    cells = selected if isinstance(selected, list) else [selected]
    buffer = io.StringIO()
    csv.writer(buffer).writerow(
        [
            cell if isinstance(cell, str) else json.dumps(cell, separators=(",", ":"))
            for cell in cells
        ]
    )
    return buffer.getvalue().removesuffix("\r\n").encode()


def _json(data: bytes, what: str, type_field: str) -> Any:
    text = _text(data, what)
    try:
        return json.loads(text)
    except ValueError as err:
        raise BadRecord(f"the {what} is not JSON, as its {type_field} says: {err}") from err


def _json_or_text(data: bytes) -> Any:
    text = _text(data, "model's answer")
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
